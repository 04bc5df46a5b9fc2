"""Discovered tenants through Dagster: dynamic partitions kept by the sensor and the schedule, backed up in batches
in the partitions' order, and a removed tenant's backups kept (and managed) by retention."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from dagster import build_schedule_context, build_sensor_context
from dagster._core.storage.partition_status_cache import AssetPartitionStatus
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets.backups import BACKUP_KEY, replica_key
from assets.partitions import DATABASES, JOINED_KEY, backup_partition_key, backup_partitions, last_window_key
from assets.verification import RESTORE_KEY
from jobs.coordinator import _batch_for
from ops_project.backups.catalog import list_backups
from ops_project.backups.retention import plan_regions
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from sensors.fleet import sync_tenants
from tests.conftest import PG_ADMIN, local_region, sqlite_tenants


@pytest.fixture
def discovering(tmp_path, write_config, demo_db_template):
    sqlite_tenants(tmp_path, demo_db_template, ["tenant-0", "tenant-1", "tenant-2"])
    declared = tmp_path / "booking.db"
    shutil.copy(demo_db_template, declared)
    cfg = load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(declared)},
         {"discover": {"engine": "sqlite", "glob": str(tmp_path / "d1" / "*.db"), "remove_after_minutes": 0}}],
        [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
        backup={"batch_size": 2, "batch_workers": 2}))
    return cfg, build_definitions(cfg), tmp_path / "d1", demo_db_template


def _sense(defs, instance):
    sensor = defs.resolve_sensor_def("tenant_discovery_sensor")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))


def test_tenants_become_partitions_and_a_new_one_is_in_the_next_window(discovering, home_instance, monkeypatch):
    cfg, defs, d1, template = discovering
    assert _sense(defs, home_instance).skip_message.startswith("4 databases in the fleet; added booking, tenant-0")
    assert home_instance.get_dynamic_partitions(DATABASES) == ["booking", "tenant-0", "tenant-1", "tenant-2"]
    # a tenant created after the sensor looked: the schedule's tick finds it and backs it up in this window
    shutil.copy(template, d1 / "tenant-new.db")
    at = datetime.now(UTC)
    window = last_window_key(cfg, at)
    tick = defs.resolve_schedule_def("backup_schedule").evaluate_tick(
        build_schedule_context(instance=home_instance, scheduled_execution_time=at,
                               repository_def=defs.get_repository_def()))
    batches = [(r.tags.get(ASSET_PARTITION_RANGE_START_TAG), r.tags.get(ASSET_PARTITION_RANGE_END_TAG),
                r.partition_key) for r in tick.run_requests]
    assert batches == [
        (str(backup_partition_key("booking", window)), str(backup_partition_key("tenant-0", window)), None),
        (str(backup_partition_key("tenant-1", window)), str(backup_partition_key("tenant-2", window)), None),
        (None, None, str(backup_partition_key("tenant-new", window)))]  # the batches follow the partitions' order
    assert home_instance.get_dynamic_partitions(DATABASES)[-1] == "tenant-new"
    # a run launched by hand for one tenant is queued with its batch (jobs/coordinator.py)
    monkeypatch.setenv("OPS_CONFIG", str(cfg.source))
    assert _batch_for("tenant-2", home_instance) == "tenant-1..tenant-2"


def test_a_batch_of_discovered_tenants_is_backed_up_and_a_removed_one_keeps_its_backups(discovering, home_instance):
    cfg, defs, d1, _ = discovering
    _sense(defs, home_instance)
    window = last_window_key(cfg, datetime.now(UTC))
    tags = {ASSET_PARTITION_RANGE_START_TAG: str(backup_partition_key("tenant-1", window)),
            ASSET_PARTITION_RANGE_END_TAG: str(backup_partition_key("tenant-2", window))}
    result = defs.resolve_job_def("backup_job").execute_in_process(instance=home_instance, tags=tags)
    assert result.success
    keys = [str(backup_partition_key(t, window)) for t in ("tenant-0", "tenant-1", "tenant-2")]
    for key in (BACKUP_KEY, replica_key("eu-west-1"), RESTORE_KEY):
        status = home_instance.get_status_by_partition(key, keys, backup_partitions(cfg))
        assert [status[k] for k in keys] == [None, AssetPartitionStatus.MATERIALIZED,
                                            AssetPartitionStatus.MATERIALIZED], key
    # the fleet's RPO covers the discovered tenants: two verified; tenant-0, new, is within the objective without
    # a backup yet; booking is declared, so never verified is a breach
    def rpo_check():
        rpo = defs.resolve_job_def("verified_rpo_job").execute_in_process(instance=home_instance,
                                                                          raise_on_error=False)
        return next(e for e in rpo.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION").event_specific_data

    check = rpo_check()
    assert not check.passed and check.description.startswith("verified RPO over its objective for 1 of 4")
    assert "booking: no backup has passed" in check.description and "tenant-0" not in check.description
    # ... until the new tenant has been in the fleet longer than the objective with no verified backup
    joined = json.loads(home_instance.run_storage.get_cursor_values({JOINED_KEY})[JOINED_KEY])
    assert set(joined) == {"tenant-0", "tenant-1", "tenant-2"}
    home_instance.run_storage.set_cursor_values(
        {JOINED_KEY: json.dumps({**joined, "tenant-0": time.time() - (cfg.objectives.rpo_minutes + 1) * 60})})
    assert "tenant-0: no backup has passed" in rpo_check().description

    # tenant-2 is deleted from the platform: its partition goes, its backups stay, and retention still manages them
    (d1 / "tenant-2.db").unlink()
    stores = [Clients(cfg).store(r) for r in cfg.regions]
    stale = "backups/tenant-2/20260101T000000Z/data.sqlite.zst"  # an old upload that never completed
    stores[0].put_bytes(stale, b"partial")
    old = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    os.utime(cfg.primary.path / stale, (old, old))
    assert "removed tenant-2 (their backups are kept per retention)" in _sense(defs, home_instance).skip_message
    assert "tenant-2" not in home_instance.get_dynamic_partitions(DATABASES)
    assert defs.resolve_job_def("backup_retention").execute_in_process(instance=home_instance).success
    for store, plan in zip(stores, plan_regions(stores, cfg.backup.retention, now=datetime.now(UTC), tz=cfg.tz),
                           strict=True):
        (kept,) = [e for e in list_backups(store, "tenant-2") if e.complete]
        assert kept.manifest.partition_key == window
        assert ("tenant-2", kept.backup_id) in plan.keep
    assert not stores[0].exists(stale)  # managed, not orphaned: retention cleaned up its incomplete upload


def test_a_file_that_cannot_be_a_tenant_fails_the_tick_by_name_after_the_rest_are_added(discovering, home_instance):
    cfg, defs, d1, template = discovering
    shutil.copy(template, d1 / "Bad Name.db")
    with pytest.raises(Exception, match="Bad Name") as err:
        _sense(defs, home_instance)
    assert "rename it, or add it to the rule's exclude" in str(err.value)
    assert home_instance.get_dynamic_partitions(DATABASES) == ["booking", "tenant-0", "tenant-1", "tenant-2"]


def test_an_unmounted_directory_fails_the_tick_and_removes_no_one(discovering, home_instance):
    cfg, defs, d1, _ = discovering
    _sense(defs, home_instance)
    d1.rename(d1.with_name("d1-unmounted"))
    with pytest.raises(Exception, match="is the volume mounted"):
        _sense(defs, home_instance)  # remove_after_minutes is 0 here: only "cannot look" keeps them
    assert home_instance.get_dynamic_partitions(DATABASES) == ["booking", "tenant-0", "tenant-1", "tenant-2"]


def test_an_emptied_directory_is_not_every_tenant_deleted(discovering, home_instance):
    """An unmounted volume often leaves its empty mount point: a rule finding no one where it found three before
    holds them and fails the tick; once the rule is taken out of the configuration, they are removed."""
    cfg, defs, d1, template = discovering
    _sense(defs, home_instance)
    for path in d1.glob("*.db"):
        path.unlink()
    with pytest.raises(Exception, match=r"found no database, where it found 3 before") as err:
        _sense(defs, home_instance)  # remove_after_minutes is 0: without the guard all three would go now
    assert "remove the rule from the configuration" in str(err.value)
    assert home_instance.get_dynamic_partitions(DATABASES) == ["booking", "tenant-0", "tenant-1", "tenant-2"]
    shutil.copy(template, d1 / "tenant-0.db")  # one of them is back: the rule can see, the other two go
    assert "removed tenant-1, tenant-2" in sync_tenants(cfg, home_instance, remove=True).summary()
    (d1 / "tenant-0.db").unlink()
    with pytest.raises(Exception, match="found no database, where it found 1 before"):
        _sense(defs, home_instance)
    gone = cfg.model_copy(update={"discover": [cfg.discover[0].model_copy(update={"glob": str(d1 / "*.sqlite")})]})
    assert sync_tenants(gone, home_instance, remove=True).removed == ["tenant-0"]


def test_each_rule_keeps_its_own_removal_time(tmp_path, discovering, home_instance, demo_db_template):
    cfg, defs, d1, template = discovering
    (tmp_path / "slow").mkdir()
    sqlite_tenants(tmp_path / "slow", demo_db_template, ["slow-0", "slow-1"])
    slow = cfg.discover[0].model_copy(update={"glob": str(tmp_path / "slow" / "d1" / "*.db"),
                                              "remove_after_minutes": 120})
    cfg = cfg.model_copy(update={"discover": [cfg.discover[0], slow]})  # the first removes at once
    start = time.time()
    assert "slow-1" in sync_tenants(cfg, home_instance, remove=True, now=start).added
    (d1 / "tenant-1.db").unlink()
    (tmp_path / "slow" / "d1" / "slow-1.db").unlink()
    first = sync_tenants(cfg, home_instance, remove=True, now=start + 60)
    assert first.removed == ["tenant-1"] and first.waiting == {"slow-1": start + 60}
    assert sync_tenants(cfg, home_instance, remove=True, now=start + 60 + 119 * 60).removed == []
    assert sync_tenants(cfg, home_instance, remove=True, now=start + 60 + 120 * 60).removed == ["slow-1"]


def test_postgres_tenants_found_on_a_server_are_backed_up_with_the_servers_url(tmp_path, write_config, scratch_pg,
                                                                              home_instance, monkeypatch):
    tag = f"opsdisc_{uuid.uuid4().hex[:6]}"
    for name in (f"{tag}_a", f"{tag}_b"):
        with psycopg.connect(scratch_pg(name), autocommit=True) as con:
            con.execute("CREATE TABLE bookings (id int PRIMARY KEY, who text)")
            con.execute("INSERT INTO bookings SELECT g, 'guest ' || g FROM generate_series(1, 250) g")
    password = "srv-pass-51c0de"  # the server trusts local connections: any password works, and must not leak
    server = PG_ADMIN.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")
    monkeypatch.setenv("OPS_T_SERVER", server)
    cfg = load_config(write_config(
        [{"discover": {"engine": "postgres", "url_env": "OPS_T_SERVER", "pattern": f"{tag}_*"}}],
        [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
        restore={"postgres_scratch_url_env": "OPS_T_SERVER"}))
    defs = build_definitions(cfg)
    _sense(defs, home_instance)
    assert home_instance.get_dynamic_partitions(DATABASES) == [f"{tag}_a", f"{tag}_b"]
    window = last_window_key(cfg, datetime.now(UTC))
    result = defs.resolve_job_def("backup_job").execute_in_process(instance=home_instance, tags={
        ASSET_PARTITION_RANGE_START_TAG: str(backup_partition_key(f"{tag}_a", window)),
        ASSET_PARTITION_RANGE_END_TAG: str(backup_partition_key(f"{tag}_b", window))})
    assert result.success
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert len(checks) == 18 and all(c.passed for c in checks)  # 9 restore checks per database
    for name in (f"{tag}_a", f"{tag}_b"):
        (entry,) = [e for e in list_backups(Clients(cfg).store(cfg.regions[1]), name) if e.complete]
        assert entry.manifest.tables["public.bookings"].rows == 250
    logged = " ".join(repr(e) for e in home_instance.all_logs(result.run_id))
    assert password not in logged and password not in repr(home_instance.get_run_by_id(result.run_id))


def test_the_removal_clock_runs_across_ticks_and_a_tenant_back_in_time_is_kept(discovering, home_instance):
    cfg, defs, d1, template = discovering
    cfg = cfg.model_copy(update={"discover": [cfg.discover[0].model_copy(update={"remove_after_minutes": 30})]})
    start = time.time()
    sync_tenants(cfg, home_instance, remove=True, now=start)
    (d1 / "tenant-1.db").rename(tmp := d1.parent / "tenant-1.moving")
    assert sync_tenants(cfg, home_instance, remove=True, now=start + 60).waiting == {"tenant-1": start + 60}
    assert sync_tenants(cfg, home_instance, remove=False, now=start + 600).added == []  # the schedule: no clock
    assert sync_tenants(cfg, home_instance, remove=True, now=start + 60 + 29 * 60).removed == []
    tmp.rename(d1 / "tenant-1.db")  # it was only being moved: forgiven, clock reset
    assert sync_tenants(cfg, home_instance, remove=True, now=start + 60 + 31 * 60).waiting == {}
    (d1 / "tenant-1.db").unlink()
    assert sync_tenants(cfg, home_instance, remove=True, now=start + 7200).removed == []
    assert sync_tenants(cfg, home_instance, remove=True, now=start + 7200 + 30 * 60).removed == ["tenant-1"]
    assert "tenant-1" not in home_instance.get_dynamic_partitions(DATABASES)
