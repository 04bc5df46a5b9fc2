"""The ``continuous`` section: which SQLite databases Litestream replicates, which PostgreSQL clusters archive
their WAL with pgBackRest, and how often."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from ops_project.common.config import NAME_RE, Strict, five_field_cron


class PostgresArchive(Strict):
    """How pgBackRest reaches one PostgreSQL cluster. pgBackRest reads the cluster's files, so it (and this
    project's commands that drive it) run on the database host, as the cluster's owner."""

    data_directory: Path  # pg1-path: the cluster's data directory
    port: int = Field(5432, ge=1, le=65535)
    socket_dir: Path = Path("/var/run/postgresql")  # pgBackRest connects through the server's Unix socket
    os_user: str = "postgres"  # the cluster's owner: pgBackRest, and a restored server, run as this user
    db_user: str = "postgres"  # the database role pgBackRest connects as (a superuser, for backups)
    archive_timeout_seconds: int = Field(30, ge=1, le=3600)  # the server's archive_timeout: bounds the RPO
    bin_dir: Path | None = None  # pg_ctl of the cluster's version; default /usr/lib/postgresql/<PG_VERSION>/bin


class ContinuousConfig(Strict):
    """Continuous WAL replication (Litestream) of SQLite databases into every region; the snapshot backups stay
    as they are (the independent copies a person restores with stock tools)."""

    databases: list[str] | None = None  # names; default: every SQLite database the configuration declares
    sync_interval_seconds: int = Field(1, ge=1, le=3600)  # how often new WAL reaches the regions
    snapshot_interval_hours: int = Field(24, ge=1)  # a fresh full copy in each region this often
    retention_hours: int = Field(72, ge=25)  # how far back a restore to a moment can go (the test picks the last day)
    marker_seconds: int = Field(60, ge=5, le=3600)  # a marker row in each database this often (proves restores)
    stall_seconds: int = Field(300, ge=5)  # a replica not advancing this long while markers are written: alert
    restore_test_cron: str = "15 * * * *"  # the point-in-time restore test: hourly by default
    postgres: dict[str, PostgresArchive] = {}  # database name -> its cluster: WAL archiving with pgBackRest
    base_backup_cron: str = "30 1 * * *"  # pgBackRest full backups (a restore to a moment starts from one)
    base_backups_kept: int = Field(2, ge=1, le=30)  # full backups kept per region, with the WAL they need
    pgbackrest_dir: Path = Path(".ops/pgbackrest")  # pgBackRest's configuration, log, lock and spool
    archive_queue_max_gb: int = Field(4, ge=1)  # WAL waiting for a refusing region past this is dropped
    recovery_timeout_minutes: int = Field(60, ge=1)  # a restored cluster replaying WAL up to the moment
    postgres_test_every_hours: int = Field(24, ge=0)  # a whole cluster restored twice: not at every hourly run

    @field_validator("restore_test_cron", "base_backup_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return five_field_cron(value)

    @model_validator(mode="after")
    def _names(self) -> ContinuousConfig:
        for name in [*(self.databases or []), *self.postgres]:
            if not re.fullmatch(NAME_RE, name):
                raise ValueError(f"continuous: {name!r} is not a database name")
            if name == "pgbackrest":  # continuous/pgbackrest/ is pgBackRest's repository in every region
                raise ValueError("continuous: a database named 'pgbackrest' would share its folder with pgBackRest's "
                                 "repository: rename it")
        if self.stall_seconds <= self.marker_seconds + self.sync_interval_seconds:
            raise ValueError("continuous.stall_seconds must be longer than marker_seconds + sync_interval_seconds "
                             "(a healthy replica advances at least once per marker)")
        for name, pg in self.postgres.items():
            if self.stall_seconds <= self.marker_seconds + pg.archive_timeout_seconds:
                raise ValueError(f"continuous.stall_seconds must be longer than marker_seconds + "
                                 f"postgres.{name}.archive_timeout_seconds (a healthy archive gets a new WAL "
                                 f"segment at least that often)")
        paths = [pg.data_directory.resolve() for pg in self.postgres.values()]
        if len(set(paths)) != len(paths):
            raise ValueError("continuous.postgres: two databases name the same data_directory: pgBackRest archives "
                             "a cluster once (name one database of each cluster)")
        return self
