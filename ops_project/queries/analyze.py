"""``analyze``: log files in, the DESIGN report out (``statements`` and ``queries`` ranked by total time).

A log that yields no statement, or whose lines mostly match nothing, is an error that names the file, the
format and prefix tried and an example line: an empty report would read as "no slow queries".
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ops_project.queries import pglog, sqlite_log, statements
from ops_project.queries.fingerprint import Fingerprinter
from ops_project.queries.pglog import LogError, ReadStats
from ops_project.queries.prefix import DEFAULT_PREFIX
from ops_project.queries.stats import QueryStats

MAX_UNPARSED_SHARE = 0.05  # more lines than this that match nothing: the prefix or format is wrong


class NoStatementsError(LogError):
    """The inputs held no statement with a duration."""


def analyze(paths: Iterable[str | Path], fmt: str = "auto", log_line_prefix: str | None = None, top: int = 50,
            keep_examples: bool = False, max_unparsed_share: float = MAX_UNPARSED_SHARE,
            explain_db: str | Path | None = None) -> dict:
    """``explain_db``: a read-only copy of the SQLite database the log is from, for index hints."""
    paths = list(paths)
    read, counted = ReadStats(), statements.StatementStats()
    if fmt == "sqlite-jsonl":
        stream = sqlite_log.calls(paths, read, counted)
        fingerprint = Fingerprinter("sqlite")
    else:
        stream = statements.calls(pglog.read_log(paths, fmt, log_line_prefix, read), counted)
        fingerprint = Fingerprinter("postgres")
    groups: dict[str, QueryStats] = {}
    for call in stream:
        fp = fingerprint(call.sql)
        group = groups.get(fp.id)
        if group is None:
            group = groups[fp.id] = QueryStats(fp.id, fp.query)
        group.add(call.duration_ms, call.ts, call.rows, call.sql if keep_examples else None)
    tried = f"format {fmt}" + ("" if fmt in ("csvlog", "jsonlog", "sqlite-jsonl") else
                               f", log_line_prefix {log_line_prefix or DEFAULT_PREFIX!r}")
    where = ", ".join(read.files) or ", ".join(map(str, paths))
    example = f"; first line that matched nothing: {read.first_unparsed!r}" if read.first_unparsed else ""
    if counted.calls == 0:
        raise NoStatementsError(
            f"no statement with a duration in {where} ({tried}; {read.lines} lines read){example}. Check the "
            f"prefix against the server's (SHOW log_line_prefix) and that log_min_duration_statement or "
            f"log_duration is on")
    if read.lines and read.unparsed / read.lines > max_unparsed_share:
        raise LogError(f"{read.unparsed} of {read.lines} lines in {where} match nothing ({tried}){example}: "
                       f"the prefix or the format is probably wrong")
    total = sum(g.total_ms for g in groups.values())
    ranked = sorted(groups.values(), key=lambda g: (-g.total_ms, g.fingerprint))
    queries = []
    for g in ranked[:top]:
        row = g.summary(total)
        if not keep_examples:
            row["example"] = g.query  # normalised: customers' data never lands in a report
        queries.append(row)
    hints = []
    if explain_db is not None and fmt == "sqlite-jsonl":
        from ops_project.queries.plans import sqlite_hints

        hints = sqlite_hints(explain_db, queries)
    return {
        "statements": counted.calls,
        "hints": hints,
        "queries": queries,
        "fingerprints": len(groups),
        "unparsed_statements": sum(g.calls for g in groups.values() if g.fingerprint.startswith("text:")),
        "total_ms": round(total, 3),
        "parse_bind_ms": round(counted.parse_bind_ms, 3),
        "statements_without_duration": counted.without_duration,
        "files": read.files,
        "lines": read.lines,
        "unparsed_lines": read.unparsed,
    }
