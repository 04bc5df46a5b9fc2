"""The demo API's query log, in the shape D1's query insights give: one JSON line per statement,
``{"ts", "sql", "duration_ms", "rows_read", "rows_written"}``. The SQL is logged with its ``?`` placeholders,
never with the values (no customer data in a log).

``rows_read`` is the rows the statement returned (SQLite does not count rows scanned as D1 does);
``rows_written`` the rows it changed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path


class QueryLog:
    """Appends to a JSONL file; safe across the API's worker threads. A ``{date}`` in the path is the statement's
    UTC day (one file a day, as servers rotate their logs). ``clock``: when a statement ran (default: now)."""

    def __init__(self, path: str | Path, clock: Callable[[], datetime] | None = None):
        self.template = str(path)
        Path(self.template.replace("{date}", "x")).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()

    def path_for(self, at: datetime) -> Path:
        return Path(self.template.replace("{date}", at.astimezone(UTC).date().isoformat()))

    def write(self, sql: str, duration_ms: float, rows_read: int, rows_written: int) -> None:
        at = self._clock()
        line = json.dumps({"ts": at.astimezone(UTC).isoformat(timespec="milliseconds"), "sql": sql,
                           "duration_ms": round(duration_ms, 4), "rows_read": rows_read,
                           "rows_written": rows_written})
        with self._lock, open(self.path_for(at), "a") as fh:
            fh.write(line + "\n")


class _Result:
    """What the API uses of a cursor, over rows already fetched (so that their time is the statement's)."""

    def __init__(self, rows: list, lastrowid: int | None, rowcount: int):
        self._rows, self.lastrowid, self.rowcount, self._i = rows, lastrowid, rowcount, 0

    def fetchone(self):
        if self._i >= len(self._rows):
            return None
        self._i += 1
        return self._rows[self._i - 1]

    def fetchall(self) -> list:
        rest, self._i = self._rows[self._i:], len(self._rows)
        return rest

    def __iter__(self):
        return iter(self.fetchall())


def logged_connection(log: QueryLog):
    """A ``sqlite3.connect`` factory whose ``execute`` times each statement (fetch included) into ``log``."""

    class LoggedConnection(sqlite3.Connection):
        def execute(self, sql: str, parameters=(), /):  # noqa: D102 - sqlite3.Connection.execute, timed
            before = self.total_changes
            t = time.perf_counter()
            cur = super().execute(sql, parameters)
            rows = cur.fetchall()
            ms = (time.perf_counter() - t) * 1000
            if not sql.lstrip().upper().startswith(("PRAGMA", "BEGIN", "COMMIT", "ROLLBACK")):
                log.write(sql, ms, len(rows), self.total_changes - before)
            return _Result(rows, cur.lastrowid, cur.rowcount)

    return LoggedConnection
