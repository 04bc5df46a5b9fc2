"""Scratch space for restores and snapshots: private temporary directories and throw-away PostgreSQL
databases, and the clean-up of what a killed run (kill -9, a lost machine) left behind.

Plaintext snapshots and restored copies only ever live in a directory made by ``scratch_directory``
(mode 0700, ``ops-<purpose>-*``). Scratch databases are named ``ops_<purpose>_<unix time>_<random>``, so
that the next run can tell a leaked one by its age. Both are swept once older than ``STALE_SECONDS``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import psycopg.sql

from ops_project.backups.engines.postgres import parse_url

STALE_SECONDS = 24 * 3600
PURPOSES = ("snapshot", "verify", "drill", "restore")
_DIR_RE = re.compile(rf"^ops-({'|'.join(PURPOSES)})-[a-z0-9_]{{8}}$")  # exactly what tempfile names them
_DB_RE = re.compile(rf"^ops_({'|'.join(PURPOSES)})_(\d{{10}})_[0-9a-f]+$")


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for child in path.rglob("*"):
        with contextlib.suppress(OSError):
            newest = max(newest, child.stat().st_mtime)
    return newest


def sweep_stale_directories(base: str | Path | None, *, now: float | None = None) -> list[Path]:
    """Remove our scratch directories under ``base`` (default: the system temp dir) untouched for a day."""
    root = Path(base) if base else Path(tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    with contextlib.suppress(OSError):
        for path in root.iterdir():
            try:
                st = path.lstat()
                ours = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700
                if ours and _DIR_RE.match(path.name) and now - _newest_mtime(path) > STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
            except OSError:
                continue
    return removed


@contextlib.contextmanager
def scratch_directory(purpose: str, base: str | Path | None = None) -> Iterator[Path]:
    """A private (0700) temporary directory for plaintext, removed afterwards; stale ones are swept first."""
    assert purpose in PURPOSES, purpose
    sweep_stale_directories(base)
    with tempfile.TemporaryDirectory(prefix=f"ops-{purpose}-", dir=base) as tmp:
        yield Path(tmp)


def sweep_stale_databases(con: psycopg.Connection, *, now: float | None = None) -> list[str]:
    """Drop scratch databases (``ops_<purpose>_<time>_…``) on this server that are older than a day."""
    now = time.time() if now is None else now
    dropped = []
    for (name,) in con.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ops\\_%'").fetchall():
        match = _DB_RE.match(name)
        if match and now - int(match.group(2)) > STALE_SECONDS:
            try:  # without FORCE: a database somebody is still connected to is left alone
                con.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(name)))
            except psycopg.errors.ObjectInUse:
                continue
            dropped.append(name)
    return dropped


def create_database(con: psycopg.Connection, name: str, encoding: str | None = None) -> None:
    """``CREATE DATABASE`` from ``template0`` (nothing of template1's local additions) in the source's
    encoding, so that text restores, and checksums over it, byte for byte. An encoding the server's
    default locale cannot hold (LATIN1 on a UTF-8 cluster) gets the C locale."""
    base = psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(psycopg.sql.Identifier(name))
    if not encoding:
        con.execute(base)
        return
    with_encoding = base + psycopg.sql.SQL(" ENCODING {}").format(psycopg.sql.Literal(encoding))
    try:
        con.execute(with_encoding)
    except psycopg.errors.InvalidParameterValue:  # "encoding ... does not match locale ..."
        con.execute(with_encoding + psycopg.sql.SQL(" LC_COLLATE 'C' LC_CTYPE 'C'"))


@contextlib.contextmanager
def scratch_database(server_url: str, *, purpose: str, what: str, encoding: str | None = None) -> Iterator[str]:
    """A throw-away PostgreSQL database on ``server_url``'s server (URL yielded), dropped afterwards.

    Its name comes from the time and a uuid, never from anything read out of a bucket.
    """
    assert purpose in PURPOSES, purpose
    info = parse_url(server_url, what=what)
    name = f"ops_{purpose}_{int(time.time())}_{uuid.uuid4().hex[:16]}"
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": info.get("dbname") or "postgres"})
    with psycopg.connect(admin, autocommit=True) as con:
        sweep_stale_databases(con)
        create_database(con, name, encoding)
    try:
        yield psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))
