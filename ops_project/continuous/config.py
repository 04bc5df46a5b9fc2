"""The ``continuous`` section: which SQLite databases Litestream replicates, and how often."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from ops_project.common.config import NAME_RE, Strict, five_field_cron


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

    @field_validator("restore_test_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return five_field_cron(value)

    @model_validator(mode="after")
    def _names(self) -> ContinuousConfig:
        for name in self.databases or []:
            if not re.fullmatch(NAME_RE, name):
                raise ValueError(f"continuous.databases: {name!r} is not a database name")
        if self.stall_seconds <= self.marker_seconds + self.sync_interval_seconds:
            raise ValueError("continuous.stall_seconds must be longer than marker_seconds + sync_interval_seconds "
                             "(a healthy replica advances at least once per marker)")
        return self
