"""From log entries to statement calls, each with its duration.

Both ways servers log them:

- ``log_min_duration_statement``: ``duration: 1.2 ms  statement: SELECT …`` (one line, text and time);
- ``log_statement = all`` with ``log_duration = on``: ``statement: SELECT …``, later ``duration: 1.2 ms``
  from the same session (joined by session id or process id).

The extended query protocol logs its three steps; the ``execute`` step is the call. ``parse`` and ``bind``
are not calls: their time is counted apart. Errors, checkpoints, autovacuum and connection lines, and every
entry that is not a ``LOG``, are not statements.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ops_project.queries.pglog import Entry

_DURATION = re.compile(r"duration: (?P<ms>\d+(?:\.\d+)?) ms(?:  (?P<rest>.*))?\Z", re.DOTALL)
_STEP = re.compile(r"(?P<step>statement|execute|parse|bind)(?: [^:\n]*)?: (?P<sql>.*)\Z", re.DOTALL)


@dataclass(slots=True)
class Call:
    ts: str
    duration_ms: float
    sql: str
    rows: int | None = None


@dataclass
class StatementStats:
    calls: int = 0
    parse_bind_ms: float = 0.0  # extended protocol: time spent in parse and bind steps (not calls)
    without_duration: int = 0  # logged statements whose duration never came (log_duration off)


def calls(entries: Iterable[Entry], stats: StatementStats | None = None) -> Iterator[Call]:
    stats = stats if stats is not None else StatementStats()
    pending: dict[str, tuple[str, str]] = {}  # session → (ts, sql) of a statement logged before its duration
    for e in entries:
        if e.severity != "LOG":
            if e.severity in ("ERROR", "FATAL", "PANIC"):  # the statement this session logged failed: no call,
                pending.pop(e.session, None)  # and the next step's duration is not its time
            continue
        msg = e.message
        if msg.startswith("duration: "):
            # the common line first, by string operations: "duration: 1.234 ms  statement: SELECT …"
            end = msg.find(" ms  statement: ", 10)
            if end > 0 and msg[10:end].replace(".", "", 1).isdigit():
                stats.calls += 1
                yield Call(e.ts, float(msg[10:end]), msg[end + 16:])
                continue
            m = _DURATION.match(msg)
            if m is None:
                continue
            ms = float(m["ms"])
            rest = m["rest"]
            if rest is None:  # log_duration: the time of the statement this session logged last
                waiting = pending.pop(e.session, None)
                if waiting is None:
                    stats.parse_bind_ms += ms  # a parse or bind step (their text is logged with execute only)
                    continue
                stats.calls += 1
                yield Call(waiting[0], ms, waiting[1])
                continue
            step = _STEP.match(rest)
            if step is None:  # fastpath function calls and the like
                continue
            if step["step"] in ("parse", "bind"):
                stats.parse_bind_ms += ms
                continue
            stats.calls += 1
            yield Call(e.ts, ms, step["sql"])
            continue
        if msg.startswith(("statement: ", "execute ")):
            step = _STEP.match(msg)
            if step is None:
                continue
            if e.session in pending:
                stats.without_duration += 1
            pending[e.session] = (e.ts, step["sql"])
    stats.without_duration += len(pending)
