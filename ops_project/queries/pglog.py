"""PostgreSQL server logs (stderr with any ``log_line_prefix``, ``csvlog``, ``jsonlog``; plain or gzip) read as
one stream of log entries, multi-line messages joined, in file order.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ops_project.common.errors import OpsError
from ops_project.queries.prefix import DEFAULT_PREFIX, prefix_regex

csv.field_size_limit(1 << 30)  # a statement can be long: the csv module's 128 KiB default cuts real ones


class LogError(OpsError):
    """A log that cannot be read as the format and prefix given (the message names file, format and prefix)."""


@dataclass(slots=True)
class Entry:
    ts: str
    session: str
    severity: str
    message: str
    database: str | None = None  # the database the session is connected to, where the log says (%d, dbname)


@dataclass
class ReadStats:
    """What was read: per file, the lines, and those that belong to no entry (a wrong prefix shows here)."""

    files: list[str] = field(default_factory=list)
    lines: int = 0
    unparsed: int = 0
    first_unparsed: str | None = None  # an example, for the error message

    def miss(self, line: str) -> None:
        self.unparsed += 1
        if self.first_unparsed is None:
            self.first_unparsed = line[:200]


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files and globs, each glob sorted; a path that matches nothing is an error, never an empty day."""
    out: list[Path] = []
    for raw in paths:
        text = str(raw)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise LogError(f"no log file matches {text}: check queries.sources[].paths")
            out += [Path(m) for m in matches]
        else:
            path = Path(text)
            if not path.is_file():
                raise LogError(f"log file {path} does not exist (or is not a file): check queries.sources[].paths")
            out.append(path)
    return out


def open_text(path: Path) -> io.TextIOBase:
    """The file as text; gzip when it starts with gzip's magic bytes, whatever its name."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    raw = gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")  # noqa: SIM115 - returned
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def looks_like_d1(path: Path) -> bool:
    """A SQLite / D1 query log: JSON lines with ``sql`` and ``duration_ms`` (PostgreSQL's jsonlog has neither)."""
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                try:
                    doc = json.loads(line)
                except ValueError:
                    return False
                return isinstance(doc, dict) and "sql" in doc and "duration_ms" in doc
    return False


def detect_format(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    if name.endswith(".csv"):
        return "csvlog"
    if name.endswith(".json"):
        return "jsonlog"
    with open_text(path) as fh:
        first = fh.readline()
    return "jsonlog" if first.lstrip().startswith("{") else "stderr"


def _stderr(fh, regex, stats: ReadStats) -> Iterator[Entry]:
    current: Entry | None = None
    names = regex.groupindex
    # the groups this prefix has, read by position (a dict per line costs more than the rest of the line)
    ts_at, epoch_at = names.get("ts", 0), names.get("epoch", 0)  # group 0 is never asked: see below
    session_at, pid_at = names.get("session", 0), names.get("pid", 0)
    db_at, severity_at, msg_at = names.get("db"), names["severity"], names["msg"]
    for line in fh:
        stats.lines += 1
        line = line.rstrip("\r\n")
        m = regex.match(line)
        if m is None:
            if current is None:
                stats.miss(line)
            else:  # a continuation line of a multi-line message (PostgreSQL indents them with a tab)
                current.message += "\n" + line.removeprefix("\t")
            continue
        if current is not None:
            yield current
        current = Entry((ts_at and m.group(ts_at)) or (epoch_at and m.group(epoch_at)) or "",
                        (session_at and m.group(session_at)) or (pid_at and m.group(pid_at)) or "",
                        m.group(severity_at), m.group(msg_at), m.group(db_at) if db_at else None)
    if current is not None:
        yield current


def _csvlog(fh, stats: ReadStats) -> Iterator[Entry]:
    for row in csv.reader(fh):
        stats.lines += 1
        if len(row) < 14:
            stats.miss(",".join(row))
            continue
        yield Entry(row[0], row[5] or row[3], row[11], row[13], row[2])


def _jsonlog(fh, stats: ReadStats) -> Iterator[Entry]:
    for line in fh:
        stats.lines += 1
        try:
            doc = json.loads(line)
            yield Entry(doc.get("timestamp", ""), str(doc.get("session_id") or doc.get("pid") or ""),
                        doc["error_severity"], doc.get("message", ""), doc.get("dbname", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            if line.strip():
                stats.miss(line)


def read_log(paths: Iterable[str | Path], fmt: str = "auto", log_line_prefix: str | None = None,
             stats: ReadStats | None = None, database: str | None = None) -> Iterator[Entry]:
    """Every entry of every file, in order. ``fmt``: auto (by name, then by the first line), stderr, csvlog,
    jsonlog. ``stats`` (if given) counts lines and those that matched nothing. ``database``: only the entries
    of sessions connected to that database (the server logs all of its databases in one file)."""
    stats = stats if stats is not None else ReadStats()
    entries = _read(paths, fmt, log_line_prefix, stats, database)
    if database is None:
        return entries
    return (e for e in entries if e.database == database)


def _read(paths, fmt: str, log_line_prefix: str | None, stats: ReadStats, database: str | None) -> Iterator[Entry]:
    regex = None
    for path in expand(paths):
        kind = detect_format(path) if fmt == "auto" else fmt
        if kind not in ("stderr", "csvlog", "jsonlog"):
            raise LogError(f"{path}: unknown log format {kind!r} (stderr, csvlog or jsonlog)")
        stats.files.append(f"{path} ({kind})")
        with open_text(path) as fh:
            if kind == "stderr":
                regex = regex or prefix_regex(log_line_prefix or DEFAULT_PREFIX)
                if database is not None and "db" not in regex.groupindex:
                    raise LogError(f"{path}: log_line_prefix {log_line_prefix or DEFAULT_PREFIX!r} has no %d, so "
                                   f"its lines do not say their database: add %d to the server's prefix, or "
                                   f"leave log_database out")
                yield from _stderr(fh, regex, stats)
            elif kind == "csvlog":
                yield from _csvlog(fh, stats)
            else:
                yield from _jsonlog(fh, stats)
