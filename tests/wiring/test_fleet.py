"""A fleet of tenant databases: batches of databases per run, each with its own partition status and verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, build_schedule_context
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.storage.partition_status_cache import AssetPartitionStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets.backups import BACKUP_KEY, replica_key
from assets.partitions import backup_partition_key, backup_partitions, last_window_key, window_partitions
from assets.verification import RESTORE_KEY
from ops_project.backups.catalog import list_backups
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from tests.conftest import local_region, sqlite_tenants

TENANTS = [f"tenant-{i}" for i in range(5)]


@pytest.fixture
def fleet(tmp_path, write_config, demo_db_template):
    dbs = sqlite_tenants(tmp_path, demo_db_template, TENANTS)
    cfg = load_config(write_config(dbs, [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                                   backup={"batch_size": 3, "batch_workers": 2}))
    return cfg, build_definitions(cfg)


def _tick(cfg, defs, at: datetime):
    schedule = defs.resolve_schedule_def("backup_schedule")
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=at)
        return schedule.evaluate_tick(context).run_requests


def test_a_tick_asks_for_one_run_per_batch_of_databases(fleet):
    cfg, defs = fleet
    at = datetime.now(UTC)
    window = last_window_key(cfg, at)
    requests = _tick(cfg, defs, at)
    ranges = [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in requests]
    assert ranges == [(str(backup_partition_key("tenant-0", window)), str(backup_partition_key("tenant-2", window))),
                      (str(backup_partition_key("tenant-3", window)), str(backup_partition_key("tenant-4", window)))]
    assert [r.tags["ops/batch"] for r in requests] == ["tenant-0..tenant-2", "tenant-3..tenant-4"]
    assert {r.tags["dagster/priority"] for r in requests} == {"10"}
    # the range covers exactly its batch: every database once, in one window
    keys = [k for r in requests for k in backup_partitions(cfg).get_partition_keys_in_range(r.partition_key_range)]
    assert sorted(str(k) for k in keys) == sorted(str(backup_partition_key(t, window)) for t in TENANTS)


def test_the_last_window_comes_from_the_cron_as_listing_every_window_would_say(tmp_path, write_config):
    """Equal to the last of every window listed since the start, across a DST change and several crons."""
    for tz, cron in (("Europe/Berlin", "0 */4 * * *"), ("America/New_York", "30 2 * * *"), ("UTC", "0 7 * * 1")):
        cfg = load_config(write_config([{"name": "b", "engine": "sqlite", "path": str(tmp_path / "b.db")}],
                                       [local_region(tmp_path, "r1")], timezone=tz, backup={"cron": cron}))
        windows = window_partitions(cfg)
        at = datetime(2026, 3, 7, tzinfo=UTC)
        while at < datetime(2026, 3, 31, tzinfo=UTC):  # Europe and America change their clocks in March
            listed = windows.get_partition_keys(current_time=at)
            assert last_window_key(cfg, at) == (listed[-1] if listed else None), (tz, cron, at)
            at += timedelta(minutes=97)
        assert last_window_key(cfg, datetime(2025, 12, 1, tzinfo=UTC)) is None  # before the history starts


def _run_batch(defs, instance, cfg, first: str, last: str, window: str, *, ok: bool):
    job = defs.resolve_job_def("backup_job")
    tags = {ASSET_PARTITION_RANGE_START_TAG: str(backup_partition_key(first, window)),
            ASSET_PARTITION_RANGE_END_TAG: str(backup_partition_key(last, window))}
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert result.success is ok
    return result


def _status(instance, cfg, key: AssetKey, window: str) -> dict[str, AssetPartitionStatus | None]:
    keys = [str(backup_partition_key(t, window)) for t in TENANTS]
    by_key = instance.get_status_by_partition(key, keys, backup_partitions(cfg))
    return {t: by_key[k] for t, k in zip(TENANTS, keys, strict=True)}


def test_a_batch_run_records_every_database_on_its_own_partitions(fleet, home_instance):
    cfg, defs = fleet
    window = last_window_key(cfg, datetime.now(UTC))
    result = _run_batch(defs, home_instance, cfg, "tenant-0", "tenant-2", window, ok=True)
    mats = result.asset_materializations_for_node("backup_pipeline")
    by = {(m.asset_key, m.partition) for m in mats}
    for tenant in TENANTS[:3]:
        pk = str(backup_partition_key(tenant, window))
        assert {(BACKUP_KEY, pk), (replica_key("eu-west-1"), pk), (RESTORE_KEY, pk)} <= by
    assert len(mats) == 9  # three assets × three databases, nothing for the databases outside the range
    for key in (BACKUP_KEY, replica_key("eu-west-1"), RESTORE_KEY):
        assert _status(home_instance, cfg, key, window) == {
            "tenant-0": AssetPartitionStatus.MATERIALIZED, "tenant-1": AssetPartitionStatus.MATERIALIZED,
            "tenant-2": AssetPartitionStatus.MATERIALIZED, "tenant-3": None, "tenant-4": None}
    # each database's backup is its own, in both regions, under its window
    for region in cfg.regions:
        store = Clients(cfg).store(region)
        for tenant in TENANTS[:3]:
            (entry,) = [e for e in list_backups(store, tenant) if e.complete]
            assert entry.manifest.partition_key == window and entry.manifest.database == tenant
    # the checks carry each database's partition and point at the materialization this run recorded
    history = home_instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(RESTORE_KEY, "stored_sha256"), limit=10)
    done = {rec.partition: rec for rec in history if rec.status.value != "PLANNED"}
    assert {p: r.status.value for p, r in done.items()} == {
        str(backup_partition_key(t, window)): "SUCCEEDED" for t in TENANTS[:3]}
    for record in done.values():
        target = record.event.dagster_event.event_specific_data.target_materialization_data
        assert target is not None and target.run_id == result.run_id


def test_a_failed_tenant_is_red_on_its_own_partitions_and_can_be_re_run_alone(fleet, home_instance):
    cfg, defs = fleet
    window = last_window_key(cfg, datetime.now(UTC))
    broken = cfg.database("tenant-1").path
    good_bytes = broken.read_bytes()
    broken.write_bytes(b"this is not a SQLite database" * 100)
    result = _run_batch(defs, home_instance, cfg, "tenant-0", "tenant-2", window, ok=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "1 of 3 databases failed" in message and "tenant-1" in message
    assert "tenant-0:" not in message and "tenant-2:" not in message
    for key in (BACKUP_KEY, replica_key("eu-west-1"), RESTORE_KEY):
        status = _status(home_instance, cfg, key, window)
        assert status["tenant-0"] == status["tenant-2"] == AssetPartitionStatus.MATERIALIZED, key
        assert status["tenant-1"] == AssetPartitionStatus.FAILED, key  # red, on its own partition only
    # the tenant is mended and re-run alone: only its partition runs, and it turns green
    broken.write_bytes(good_bytes)
    again = defs.resolve_job_def("backup_job").execute_in_process(
        instance=home_instance, partition_key=backup_partition_key("tenant-1", window))
    assert again.success and home_instance.get_run_by_id(again.run_id).status == DagsterRunStatus.SUCCESS
    assert {m.partition for m in again.asset_materializations_for_node("backup_pipeline")} == {
        str(backup_partition_key("tenant-1", window))}
    for key in (BACKUP_KEY, replica_key("eu-west-1"), RESTORE_KEY):
        assert _status(home_instance, cfg, key, window)["tenant-1"] == AssetPartitionStatus.MATERIALIZED


def test_a_thousand_databases_are_one_resource_and_twenty_runs_a_tick(tmp_path, write_config):
    dbs = [{"name": f"t{i:04d}", "engine": "sqlite", "path": str(tmp_path / f"t{i:04d}.db")} for i in range(1000)]
    cfg = load_config(write_config(dbs, [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")]))
    defs = build_definitions(cfg)
    assert not [k for k in defs.resources if k.startswith("database_")] and "databases" in defs.resources
    requests = _tick(cfg, defs, datetime.now(UTC))
    assert len(requests) == 20  # backup.batch_size 50 by default
    assert [r.tags["ops/batch"] for r in requests][:2] == ["t0000..t0049", "t0050..t0099"]
