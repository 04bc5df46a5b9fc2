"""PostgreSQL connection strings: the same server, another database."""

from __future__ import annotations

from ops_project.common.errors import ConfigError


def with_dbname(url: str, dbname: str) -> str:
    """``url`` (a ``postgresql://`` URL or ``key=value`` conninfo) pointed at ``dbname`` on the same server, with
    the same user, password and options. A malformed URL is an error that never repeats it (it may hold a
    password)."""
    import psycopg  # noqa: PLC0415 - only PostgreSQL needs it

    try:
        return psycopg.conninfo.make_conninfo(url, dbname=dbname)
    except psycopg.Error:
        raise ConfigError("not a valid PostgreSQL URL (postgresql://user@host:port/dbname): check the environment "
                          "variable that holds it") from None
