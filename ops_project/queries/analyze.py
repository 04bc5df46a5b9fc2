"""``analyze``: log files in, the JSON report out (``statements`` and ``queries`` ranked by total time).

A log that yields no statement, or whose lines mostly match nothing, is an error that names the file, the
format and prefix tried and an example line: an empty report would read as "no slow queries".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ops_project.queries import pglog, sqlite_log, statements
from ops_project.queries.fingerprint import Fingerprinter
from ops_project.queries.pglog import LogError, ReadStats
from ops_project.queries.prefix import DEFAULT_PREFIX
from ops_project.queries.stats import QueryStats
from ops_project.queries.timestamps import Clock

MAX_UNPARSED_SHARE = 0.05  # more lines than this that match nothing: the prefix or format is wrong


class NoStatementsError(LogError):
    """The inputs held no statement with a duration."""


@dataclass
class Collected:
    """Statements of some logs grouped by fingerprint, with what was read (for the report's counters)."""

    groups: dict[str, QueryStats] = field(default_factory=dict)
    read: ReadStats = field(default_factory=ReadStats)
    counted: statements.StatementStats = field(default_factory=statements.StatementStats)
    outside: int = 0  # statements outside the time range asked for


def collect(paths: Iterable[str | Path], fmt: str = "auto", log_line_prefix: str | None = None, *,
            keep_examples: bool = False, max_unparsed_share: float = MAX_UNPARSED_SHARE,
            since: datetime | None = None, until: datetime | None = None, tz: ZoneInfo | None = None,
            into: Collected | None = None, log_database: str | None = None) -> Collected:
    """Group the statements of ``paths``; with ``since``/``until``, only those logged in [since, until)
    (a timestamp without a zone is read in ``tz``). Fails on logs that yield nothing (see the module)."""
    paths = list(paths)
    out = into if into is not None else Collected()
    read, counted = ReadStats(), statements.StatementStats()
    if fmt == "auto" and paths and all(pglog.looks_like_d1(p) for p in pglog.expand(paths)):
        fmt = "sqlite-jsonl"
    if fmt == "sqlite-jsonl":
        stream = sqlite_log.calls(paths, read, counted)
        fingerprint = Fingerprinter("sqlite")
    else:
        stream = statements.calls(pglog.read_log(paths, fmt, log_line_prefix, read, log_database), counted)
        fingerprint = Fingerprinter("postgres")
    clock = Clock(tz or ZoneInfo("UTC"))
    for call in stream:
        if since is not None or until is not None:
            at = clock(call.ts)
            if at is None or (since is not None and at < since) or (until is not None and at >= until):
                out.outside += 1
                continue
        fp = fingerprint(call.sql)
        group = out.groups.get(fp.id)
        if group is None:
            group = out.groups[fp.id] = QueryStats(fp.id, fp.query)
        group.add(call.duration_ms, call.ts, call.rows, call.sql if keep_examples else None)
    tried = f"format {fmt}" + ("" if fmt in ("csvlog", "jsonlog", "sqlite-jsonl") else
                               f", log_line_prefix {log_line_prefix or DEFAULT_PREFIX!r}") + \
        (f", database {log_database!r} only" if log_database else "")
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
    out.read.files += read.files
    out.read.lines += read.lines
    out.read.unparsed += read.unparsed
    out.counted.calls += counted.calls
    out.counted.parse_bind_ms += counted.parse_bind_ms
    out.counted.without_duration += counted.without_duration
    return out


def report(collected: Collected, *, top: int = 50, keep_examples: bool = False) -> dict:
    """The JSON report of what was collected: ``statements``, ``queries`` ranked by total time, counters."""
    groups, read, counted = collected.groups, collected.read, collected.counted
    total = sum(g.total_ms for g in groups.values())
    ranked = sorted(groups.values(), key=lambda g: (-g.total_ms, g.fingerprint))
    queries = []
    for g in ranked[:top]:
        row = g.summary(total)
        if not keep_examples:
            row["example"] = g.query  # normalised: customers' data never lands in a report
        queries.append(row)
    return {
        "statements": sum(g.calls for g in groups.values()),
        "hints": [],
        "queries": queries,
        "fingerprints": len(groups),
        "unparsed_statements": sum(g.calls for g in groups.values() if g.fingerprint.startswith("text:")),
        "total_ms": round(total, 3),
        "parse_bind_ms": round(counted.parse_bind_ms, 3),
        "statements_without_duration": counted.without_duration,
        "files": read.files,
        "lines": read.lines,
        "unparsed_lines": read.unparsed,
        "outside_range": collected.outside,
    }


def analyze(paths: Iterable[str | Path], fmt: str = "auto", log_line_prefix: str | None = None, top: int = 50,
            keep_examples: bool = False, max_unparsed_share: float = MAX_UNPARSED_SHARE,
            explain_db: str | Path | None = None, log_database: str | None = None) -> dict:
    """The ``queries analyze`` report of some log files. ``explain_db``: a read-only copy of the SQLite database
    the log is from, for index hints. ``log_database``: only that PostgreSQL database's statements."""
    done = report(collect(paths, fmt, log_line_prefix, keep_examples=keep_examples,
                          max_unparsed_share=max_unparsed_share, log_database=log_database),
                  top=top, keep_examples=keep_examples)
    if explain_db is not None and all(f.endswith("(sqlite-jsonl)") for f in done["files"]):
        from ops_project.queries.plans import sqlite_hints

        done["hints"] = sqlite_hints(explain_db, done["queries"])
    return done
