"""Backup partitions: the backup window (cron, configured time zone) × database."""


import logging
from datetime import UTC, datetime

from dagster import (
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
)
from dagster._core.definitions.partitions.context import partition_loading_context

from ops_project.backups.history import history_start
from ops_project.config import OpsConfig

WINDOW_FMT = "%Y-%m-%d-%H:%M%z"  # the window's start in local time with its UTC offset: 2026-11-22-04:00+0200

_STARTS: dict[tuple, datetime] = {}


def first_window(cfg: OpsConfig) -> datetime:
    """Where the partitions begin (``history_start``), read once per process and configuration."""
    key = (str(cfg.source), cfg.primary.name, cfg.backup.start, cfg.timezone)
    if key not in _STARTS:
        _STARTS[key] = history_start(cfg, datetime.now(UTC), log=logging.getLogger("ops_project").warning)
    return _STARTS[key]


def window_partitions(cfg: OpsConfig) -> TimeWindowPartitionsDefinition:
    return TimeWindowPartitionsDefinition(
        start=first_window(cfg), fmt=WINDOW_FMT, cron_schedule=cfg.backup.cron, timezone=cfg.timezone)


def backup_partitions(cfg: OpsConfig) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({
        "database": StaticPartitionsDefinition([db.name for db in cfg.databases]),
        "window": window_partitions(cfg),
    })


def backup_partition_key(database: str, window_key: str) -> MultiPartitionKey:
    return MultiPartitionKey({"database": database, "window": window_key})


def last_window_key(cfg: OpsConfig, at: datetime) -> str | None:
    """The newest window that has ended by ``at`` (what a schedule tick at ``at`` backs up)."""
    windows = window_partitions(cfg)
    # From the cron, backwards from ``at``: not by listing every window since the history began.
    with partition_loading_context(effective_dt=at):
        key = windows.get_last_partition_key()
    first = windows.get_first_partition_window()
    if key is None or first is None or windows.time_window_for_partition_key(key).start < first.start:
        return None
    return key
