"""Backup partitions: the backup window (cron, configured time zone) × database.

The database dimension is static when every database is declared, and Dagster dynamic partitions
(``databases``) when the configuration discovers tenants: ``tenant_discovery_sensor`` adds and removes them, and
the backup schedule adds the ones it finds at its tick (``sync_tenants``), so a new tenant is backed up from its
first window. Their order (the order they were added) is the order batches follow.
"""


import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionsDefinition,
)
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

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


DATABASES = "databases"  # the dynamic partitions of a discovering configuration
JOINED_KEY = "ops/tenants/joined_at"  # instance key-value store: when each discovered tenant was added


def joined_at(instance: DagsterInstance) -> dict[str, datetime]:
    """When each discovered tenant entered the fleet (the verified RPO's grace for a tenant with no backup yet)."""
    stored = instance.run_storage.get_cursor_values({JOINED_KEY}).get(JOINED_KEY)
    return {name: datetime.fromtimestamp(at, UTC) for name, at in (json.loads(stored) if stored else {}).items()}


def record_joined(instance: DagsterInstance, names: list[str], at: float, *, known: list[str]) -> None:
    """Remember when ``names`` were added; forget tenants no longer in ``known``."""
    stored = instance.run_storage.get_cursor_values({JOINED_KEY}).get(JOINED_KEY)
    members = set(known)
    joined = {n: t for n, t in (json.loads(stored) if stored else {}).items() if n in members}
    joined.update({name: at for name in names})
    instance.run_storage.set_cursor_values({JOINED_KEY: json.dumps(joined, sort_keys=True)})


def database_partitions(cfg: OpsConfig) -> StaticPartitionsDefinition | DynamicPartitionsDefinition:
    if cfg.discovers:
        return DynamicPartitionsDefinition(name=DATABASES)
    return StaticPartitionsDefinition([db.name for db in cfg.databases])


def backup_partitions(cfg: OpsConfig) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({"database": database_partitions(cfg), "window": window_partitions(cfg)})


def database_names(cfg: OpsConfig, instance: DagsterInstance | None) -> list[str]:
    """The databases the partitions hold, in their order: the declared ones, or the tenants discovered so far."""
    if not cfg.discovers:
        return [db.name for db in cfg.databases]
    if instance is None:
        raise ValueError("a discovering configuration's databases are read from the Dagster instance")
    return list(instance.get_dynamic_partitions(DATABASES))


def range_ends(tags: Mapping[str, str]) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """(database, window) of the first and last partition of a run of a range of backup partitions (a scheduled
    batch, a range launched by hand), read from Dagster's range tags; None for any other run. The keys are
    ``database|window``: Dagster orders a multi-partition key's dimensions by name."""
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if not (start and end and "|" in start and "|" in end):
        return None
    (first, _, start_window), (last, _, end_window) = start.partition("|"), end.partition("|")
    return (first, start_window), (last, end_window)


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
