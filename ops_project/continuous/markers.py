"""Marker rows: the proof of a restore to a moment.

Every ``continuous.marker_seconds`` a row holding the time it was written goes into each continuously protected
database (table ``_ops_markers``). A restore to a moment T must hold every marker replicated by T and none
written after T; a healthy replica also advances at least once per marker, so a replica that stops advancing is
seen even when the application writes nothing. Markers older than the replicas' retention plus a day are pruned.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from ops_project.common.errors import OpsError
from ops_project.common.scrub import scrub

TABLE = "_ops_markers"
_CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (at TEXT PRIMARY KEY) WITHOUT ROWID"


def sqlite_uri(path: Path, mode: str) -> str:
    """An SQLite URI for the file (``?``, ``#`` and ``%`` in a path escaped)."""
    return f"file:{quote(str(Path(path).resolve()))}?mode={mode}"


def _text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def write_marker(path: Path, at: datetime, *, keep_hours: int) -> None:
    """One marker at ``at`` in the live database, pruning those older than ``keep_hours``; one transaction."""
    try:  # mode=rw: a database that is not there is an error, never a new empty file in its place
        con = sqlite3.connect(sqlite_uri(path, "rw"), uri=True, timeout=10, isolation_level=None)
    except sqlite3.Error as exc:
        raise OpsError(f"cannot open {path} to write a marker: {exc} (is the database there?)") from None
    try:
        con.execute(_CREATE)
        con.execute("BEGIN IMMEDIATE")
        con.execute(f"INSERT OR REPLACE INTO {TABLE} (at) VALUES (?)", (_text(at),))
        con.execute(f"DELETE FROM {TABLE} WHERE at < ?", (_text(at - timedelta(hours=keep_hours)),))
        con.execute("COMMIT")
    except sqlite3.Error as exc:
        raise OpsError(f"cannot write a marker into {path}: {exc} (a writer holding the database for more "
                       f"than 10 s?)") from None
    finally:
        con.close()


def read_markers(path: Path) -> list[datetime]:
    """The markers a database holds, oldest first (none: the table does not exist)."""
    con = sqlite3.connect(sqlite_uri(path, "ro"), uri=True)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)).fetchone():
            return []
        return [_parse(at) for (at,) in con.execute(f"SELECT at FROM {TABLE} ORDER BY at")]
    finally:
        con.close()


# PostgreSQL: the same table, written with the server's own clock (the clock recovery targets are read against)

_PG_CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (at timestamptz PRIMARY KEY)"


def write_marker_pg(url: str, *, keep_hours: int) -> datetime:
    """One marker at the server's ``clock_timestamp()``, pruning those older than ``keep_hours``; its time."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=10) as con:
            con.execute(_PG_CREATE)
            (at,) = con.execute(f"INSERT INTO {TABLE} (at) VALUES (clock_timestamp()) RETURNING at").fetchone()
            con.execute(f"DELETE FROM {TABLE} WHERE at < now() - make_interval(hours => %s)", (keep_hours,))
    except psycopg.Error as exc:
        raise OpsError(f"cannot write a marker into the PostgreSQL database: {scrub(str(exc), [url])}") from None
    return at.astimezone(UTC)


def read_markers_pg(con) -> list[datetime]:
    """The markers an open PostgreSQL connection's database holds, oldest first (none: no table)."""
    if con.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is None:
        return []
    return [at.astimezone(UTC) for (at,) in con.execute(f"SELECT at FROM {TABLE} ORDER BY at")]


def live_markers_pg(url: str) -> list[datetime]:
    """The markers the live PostgreSQL database at ``url`` holds, oldest first."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as con:
        return read_markers_pg(con)


def write_all(cfg, database_url, at: datetime) -> list[str]:
    """A marker into every continuously protected database (``database_url(db)`` gives a PostgreSQL database's
    URL); what went wrong, one line per database (empty: every marker written)."""
    keep = cfg.continuous.retention_hours + 24
    problems = []
    for db in cfg.continuous_protected:
        try:
            if db.engine == "postgres":
                write_marker_pg(database_url(db), keep_hours=keep)
            else:
                write_marker(db.path, at, keep_hours=keep)
        except OpsError as exc:
            problems.append(f"{db.name}: {exc}")
    return problems
