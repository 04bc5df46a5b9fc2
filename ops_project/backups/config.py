"""The backup domain's sections: ``objectives``, ``backup``, ``restore`` and ``drills``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ops_project.common.config import Strict, five_field_cron


class Objectives(Strict):
    rpo_minutes: int = Field(240, gt=0)
    rto_minutes: int = Field(120, gt=0)


class Compression(Strict):
    codec: Literal["zstd"] = "zstd"
    level: int = Field(3, ge=1, le=19)
    threads: int = Field(2, ge=0, le=64)


class Encryption(Strict):
    age_recipients_env: str | None = None


class Retention(Strict):
    keep_last: int = Field(6, ge=1)
    daily: int = Field(7, ge=0)
    weekly: int = Field(4, ge=0)
    monthly: int = Field(12, ge=0)
    incomplete_after_hours: int = Field(24, ge=1)


class BackupConfig(Strict):
    cron: str = "0 */4 * * *"
    start: datetime | None = None  # first window (local time); default: the first backup's window
    grace_minutes: int | None = Field(None, gt=0)
    compression: Compression = Compression()
    encryption: Encryption = Encryption()
    retention: Retention = Retention()
    retention_cron: str = "30 3 * * *"
    scratch_dir: Path | None = None
    part_size_mb: int = Field(8, ge=5, le=512)
    batch_size: int = Field(50, ge=1, le=1000)  # databases per scheduled run (a fleet pays a run's cost per batch)
    batch_workers: int = Field(2, ge=1, le=32)  # databases in flight at once inside a run

    @field_validator("cron", "retention_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return five_field_cron(value)

    @property
    def part_size(self) -> int:
        return self.part_size_mb << 20


class RestoreConfig(Strict):
    region: str | None = None  # default: the last region (proves the disaster-recovery path)
    age_identity_env: str | None = None  # the age identity (secret key line from age-keygen) for encrypted backups
    postgres_scratch_url_env: str | None = None  # server for throw-away databases (restore tests, drills)
    scratch_on_source: bool = False  # without a scratch server: create them on the source (production) server
    scratch_dir: Path | None = None


class DrillConfig(Strict):
    cron: str = "0 2 * * 0"  # weekly, Sunday 02:00 in the configured time zone
    start: datetime | None = None  # default: where the backup history starts
    # default: the three snapshot scenarios, and point_in_time when a continuous section protects a database
    scenarios: list[Literal["region_loss", "corrupt_latest", "database_loss", "point_in_time"]] | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return five_field_cron(value)
