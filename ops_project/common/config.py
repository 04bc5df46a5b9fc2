"""Configuration pieces every domain's section uses: the strict model base, names, secrets, databases.

Each domain owns its section (``<domain>/config.py``); the root ``ops_project/config.py`` composes
them and loads the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ops_project.common.errors import SecretMissingError

NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class Strict(BaseModel):
    """Unknown keys are errors (a misspelt key must never be silently ignored); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def five_field_cron(value: str) -> str:
    """A five-field cron expression that Dagster's schedules accept (checked here, not at Dagster load)."""
    if len(value.split()) != 5:
        raise ValueError(f"{value!r} is not a five-field cron expression")
    try:
        next(CronSim(value, datetime(2026, 1, 1)))
    except (CronSimError, StopIteration) as exc:
        raise ValueError(f"{value!r} is not a valid cron expression ({exc})") from None
    return value


class DatabaseConfig(Strict):
    """One database: backed up, verified, and (later) analysed, warmed from, measured."""

    name: str = Field(pattern=NAME_RE)
    engine: Literal["sqlite", "postgres"]
    path: Path | None = None
    url_env: str | None = None
    dbname: str | None = Field(None, description="the database on the server url_env names (default: the URL's)")
    demo_size_mb: float | None = Field(None, gt=0, description="generate a demo database here on first use")

    @model_validator(mode="after")
    def _engine_fields(self) -> DatabaseConfig:
        if self.engine == "sqlite" and self.path is None:
            raise ValueError("an sqlite database needs 'path'")
        if self.engine == "postgres" and not self.url_env:
            raise ValueError("a postgres database needs 'url_env' (the variable holding its URL)")
        return self


class DiscoverRule(Strict):
    """Tenant databases found, not listed: SQLite files matching ``glob``, or the databases on the PostgreSQL server
    ``url_env`` names whose names match ``pattern``. A database's name is the file's stem or the database's own name;
    names matching ``exclude`` are left out. A tenant that disappears is removed from the fleet only after it has
    been missing for ``remove_after_minutes`` (a file being moved, a server restarting, is not a removed tenant)."""

    engine: Literal["sqlite", "postgres"]
    glob: str | None = None  # sqlite: /srv/d1/*.db (absolute, or relative to the configuration file)
    url_env: str | None = None  # postgres: the variable holding a URL of the server (any database on it)
    pattern: str = "*"  # postgres: shell-style pattern on database names (tenant_*)
    exclude: list[str] = []  # shell-style patterns of names never backed up
    remove_after_minutes: int = Field(60, ge=0)

    @model_validator(mode="after")
    def _engine_fields(self) -> DiscoverRule:
        if self.engine == "sqlite" and (not self.glob or self.url_env):
            raise ValueError("discovering sqlite databases needs 'glob' (and no url_env), e.g. /srv/d1/*.db")
        if self.engine == "postgres" and (not self.url_env or self.glob):
            raise ValueError("discovering postgres databases needs 'url_env' (the variable holding the server's "
                             "URL) and 'pattern' (no glob)")
        return self


def secret(var: str | None, *, what: str, env: Mapping[str, str] | None = None) -> str | None:
    """Read the environment variable ``var`` names; a clear error (never the value) when unset."""
    if not var:
        return None
    env = os.environ if env is None else env
    value = (env.get(var) or "").strip()  # a trailing newline (a secret written with echo) is not part of it
    if not value:
        raise SecretMissingError(
            f"environment variable {var} (named by {what}) is not set or empty: export it before running"
        )
    return value
