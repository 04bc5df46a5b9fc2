"""Scratch space for restores: throw-away PostgreSQL databases (SQLite restores use a temporary directory)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import psycopg.sql

from ops_project.backups.engines.postgres import parse_url


@contextlib.contextmanager
def scratch_database(server_url: str, *, purpose: str, what: str) -> Iterator[str]:
    """A throw-away PostgreSQL database on ``server_url``'s server (URL yielded), dropped afterwards.

    Its name comes from a uuid, never from anything read out of a bucket.
    """
    info = parse_url(server_url, what=what)
    name = f"ops_{purpose}_{uuid.uuid4().hex}"
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": info.get("dbname") or "postgres"})
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))
