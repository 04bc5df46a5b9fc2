"""Backup partitions: the backup window (cron, configured time zone) × database."""


from datetime import datetime

from dagster import (
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
)

from ops_project.config import OpsConfig

WINDOW_FMT = "%Y-%m-%d-%H:%M"


def window_partitions(cfg: OpsConfig) -> TimeWindowPartitionsDefinition:
    return TimeWindowPartitionsDefinition(
        start=cfg.backup.start, fmt=WINDOW_FMT, cron_schedule=cfg.backup.cron, timezone=cfg.timezone)


def backup_partitions(cfg: OpsConfig) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({
        "database": StaticPartitionsDefinition([db.name for db in cfg.databases]),
        "window": window_partitions(cfg),
    })


def backup_partition_key(database: str, window_key: str) -> MultiPartitionKey:
    return MultiPartitionKey({"database": database, "window": window_key})


def last_window_key(cfg: OpsConfig, at: datetime) -> str | None:
    """The newest window that has ended by ``at`` (what a schedule tick at ``at`` backs up)."""
    keys = window_partitions(cfg).get_partition_keys(current_time=at)
    return keys[-1] if keys else None
