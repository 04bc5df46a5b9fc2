"""What the UI shows is the truth, read through Dagster's own APIs (partition status, check evaluations, run
status) on the SQLite storage of the embedded default: a corrupt window is failed and its checks carry the window,
a window without a backup is missing (not failed), and a failed drill or an RPO breach fails its run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetCheckKey
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from assets.backups import BACKUP_KEY
from assets.drills import DRILL_KEY, drill_partitions
from assets.partitions import backup_partition_key, backup_partitions, window_partitions
from assets.verification import RESTORE_KEY, RPO_KEY
from ops_project.backups.layout import backup_prefix, data_name
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from tests.conftest import local_region


@pytest.fixture
def setup(tmp_path, demo_db, write_config):
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")]))
    return cfg, build_definitions(cfg)


def _flip_a_byte(store, key: str) -> None:
    path = store.root / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupt_window_is_failed_and_a_missing_one_is_not(setup, home_instance):
    cfg, defs = setup
    instance = home_instance
    windows = window_partitions(cfg).get_partition_keys(current_time=datetime.now(UTC))
    good, corrupt, missing = windows[-1], windows[-2], windows[-3]
    backup = defs.resolve_job_def("backup_job")
    assert backup.execute_in_process(partition_key=backup_partition_key("booking", good), instance=instance).success
    # the corrupt window: a backup taken (and verified) now, stored under that window, then damaged in the DR region
    from ops_project.backups.replicate import replicate
    from ops_project.backups.take import take_backup
    from ops_project.backups.windows import make_window

    tw = window_partitions(cfg).time_window_for_partition_key(corrupt)
    primary, dr = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[-1])
    manifest = take_backup(cfg.databases[0], primary, cfg.backup, window=make_window(corrupt, tw.start, tw.end, None),
                           now=lambda: tw.end + timedelta(minutes=1))
    replicate(primary, dr, "booking", manifest.backup_id)
    _flip_a_byte(dr, backup_prefix("booking", manifest.backup_id) + data_name("sqlite", False))

    restore = defs.resolve_job_def("restore_verification_job")
    runs = {w: restore.execute_in_process(partition_key=backup_partition_key("booking", w), instance=instance,
                                          raise_on_error=False) for w in (corrupt, missing)}
    assert not runs[corrupt].success  # a corrupt backup fails its run...
    assert runs[missing].success  # ...a window with nothing to verify does not

    keys = [str(backup_partition_key("booking", w)) for w in (good, corrupt, missing)]
    status = instance.get_status_by_partition(RESTORE_KEY, keys, backup_partitions(cfg))
    assert status[keys[0]] == AssetPartitionStatus.MATERIALIZED
    assert status[keys[1]] == AssetPartitionStatus.FAILED  # red, never "materialized"
    assert status[keys[2]] is None  # missing: not red
    # the check results carry their window
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(RESTORE_KEY, "stored_sha256"), limit=10)
    by_partition = {rec.partition: rec.status.value for rec in history if rec.status.value != "PLANNED"}
    assert by_partition == {keys[0]: "SUCCEEDED", keys[1]: "FAILED"}
    # the skipped window says why
    (obs,) = instance.fetch_observations(RESTORE_KEY, limit=5).records
    assert obs.partition_key == keys[2] and "no backup for this window" in obs.asset_observation.metadata[
        "skipped"].value


def test_an_rpo_breach_and_a_failed_drill_fail_their_runs(setup, home_instance):
    cfg, defs = setup
    instance = home_instance
    rpo = defs.resolve_job_def("verified_rpo_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not rpo.success  # nothing verified yet: over the objective
    assert instance.fetch_materializations(RPO_KEY, limit=1).records  # recorded, then failed
    failure = next(e for e in rpo.all_events if e.event_type_value == "STEP_FAILURE")
    assert "verified RPO over its objective" in failure.event_specific_data.user_failure_data.description
    week = drill_partitions(cfg).get_partition_keys(current_time=datetime.now(UTC))[-1]
    drill = defs.resolve_job_def("dr_drill_job").execute_in_process(partition_key=week, instance=instance,
                                                                   raise_on_error=False)
    assert not drill.success  # no backup to restore: every scenario fails, and so does the run
    (mat,) = instance.fetch_materializations(DRILL_KEY, limit=1).records  # after recording its report
    meta = mat.asset_materialization.metadata
    assert meta["verdict"].value == "FAILED"
    assert not any(k.endswith("_achieved_seconds") for k in meta)  # nothing restored: no 0 s RTO
    # the report's table fits the page: its rows point at notes below it, each said once
    report = meta["report"].value
    rows = [line for line in report.splitlines() if line.startswith("|")]
    assert len(rows) >= 5 and all(len(line) < 150 for line in rows), rows
    notes = [line for line in report.splitlines() if line[:1].isdigit() and ". " in line]
    assert notes and len(notes) == len(set(notes)) and "[1]" in report


def test_kinds_are_the_engines_configured(tmp_path, write_config, demo_db):
    sqlite_only = build_definitions(load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)}], [local_region(tmp_path, "a")])))
    both = build_definitions(load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)},
         {"name": "core", "engine": "postgres", "url_env": "X"}], [local_region(tmp_path, "a")])))

    def kinds(defs) -> set[str]:
        spec = defs.get_repository_def().asset_graph.get(RESTORE_KEY)
        return set(spec.kinds)

    assert kinds(sqlite_only) == {"sqlite"} and kinds(both) == {"sqlite", "postgres"}


def test_a_stray_old_backup_window_is_skipped_not_red(setup, home_instance):
    """Materialising a backup window that closed long ago (a UI click, "Materialize all", a backfill) must not
    store today's data under its name, nor leave a permanent red partition: it is skipped and stays missing,
    with the reason in its observation."""
    cfg, defs = setup
    instance = home_instance
    old = window_partitions(cfg).get_partition_keys(current_time=datetime.now(UTC) - timedelta(days=1))[-1]
    partition = backup_partition_key("booking", old)
    result = defs.resolve_job_def("backup_job").execute_in_process(partition_key=partition, instance=instance)
    assert result.success and not [m for m in result.asset_materializations_for_node("backup_pipeline")
                                                if m.asset_key == BACKUP_KEY]
    status = instance.get_status_by_partition(BACKUP_KEY, [str(partition)], backup_partitions(cfg))
    assert status[str(partition)] is None  # missing, not FAILED
    (obs,) = instance.fetch_observations(BACKUP_KEY, limit=5).records
    reason = obs.asset_observation.metadata["skipped"].value
    assert obs.partition_key == str(partition) and f"backup window {old}" in reason and "nothing was stored" in reason
    for region in cfg.regions:
        assert list(Clients(cfg).store(region).list("backups/")) == []


def test_the_partition_range_starts_at_the_first_backup(tmp_path, demo_db, write_config):
    """Without ``backup.start`` the windows begin at the first backup's window (not a fixed date that leaves
    thousands of windows "missing" for ever), and stay there once it is known; before any backup, at the
    windows of the last day, so that the schedule's window exists."""
    import assets.partitions as partitions
    from ops_project.backups.take import take_backup
    from ops_project.backups.windows import make_window

    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "af-south-1")], pin_start=False)
    now = datetime.now(UTC)
    cfg = load_config(path)
    fresh = window_partitions(cfg).get_partition_keys(current_time=now)
    assert 5 <= len(fresh) <= 6  # about a day of 4-hourly windows: the newest exists for the schedule
    first = fresh[1]
    tw = window_partitions(cfg).time_window_for_partition_key(first)
    take_backup(cfg.databases[0], Clients(cfg).store(cfg.primary), cfg.backup,
                window=make_window(first, tw.start, tw.end, None), now=lambda: tw.end + timedelta(minutes=1))
    partitions._STARTS.clear()  # a new process (the next code-location load)
    keys = window_partitions(load_config(path)).get_partition_keys(current_time=now)
    assert keys[0] == first and keys[-1] == fresh[-1]
    assert drill_partitions(load_config(path)).get_partition_keys(current_time=now + timedelta(days=8))
    # remembered: the range does not move when retention later removes the first backup
    for info in list(Clients(cfg).store(cfg.primary).list("backups/")):
        Clients(cfg).store(cfg.primary).delete(info.key)
    partitions._STARTS.clear()
    assert window_partitions(load_config(path)).get_partition_keys(current_time=now)[0] == first
    # a pinned start wins, without reading any region
    pinned = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                          [{"name": "gone", "kind": "local", "path": str(tmp_path / "nowhere")}],
                          backup={"start": "2026-03-01T00:00:00"})
    assert window_partitions(load_config(pinned)).get_partition_keys(current_time=now)[0] == "2026-03-01-00:00+0200"


def test_assets_carry_owners_from_config_and_replicas_their_region_name(tmp_path, write_config, demo_db):
    from ops_project.common.errors import ConfigError

    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                                   owners=["team:sre", "oncall@booking.example"]))
    graph = build_definitions(cfg).get_repository_def().asset_graph
    keys = list(graph.get_all_asset_keys())
    assert len(keys) >= 5
    for key in keys:
        assert list(graph.get(key).owners) == ["team:sre", "oncall@booking.example"], key
    replicas = [k for k in keys if k.path[0] == "backup_replica"]
    assert [k.path for k in replicas] == [["backup_replica", "eu-west-1"]]  # the region's own name, as configured
    with pytest.raises(ConfigError, match=r"owners: 'sre' is not an owner"):
        load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                 [local_region(tmp_path, "x")], owners=["sre"]))


def test_a_weekly_cron_has_its_window_before_any_backup(tmp_path, demo_db, write_config):
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1")], pin_start=False,
                                   backup={"cron": "0 3 * * 0"}))
    from assets.partitions import last_window_key

    assert last_window_key(cfg, datetime.now(UTC)) is not None  # the schedule's first tick has a window


def test_a_catch_up_tick_created_late_fails_as_missed_not_skipped(setup, home_instance):
    """The daemon was down past a window's close; its catch-up tick creates the run late. The window was asked
    for in time (the tick), so the backup is missed: the run fails, never a green skip."""
    from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

    cfg, defs = setup
    old = window_partitions(cfg).get_partition_keys(current_time=datetime.now(UTC) - timedelta(days=1))[-1]
    tick = window_partitions(cfg).time_window_for_partition_key(old).end
    result = defs.resolve_job_def("backup_job").execute_in_process(
        partition_key=backup_partition_key("booking", old), instance=home_instance, raise_on_error=False,
        tags={SCHEDULED_EXECUTION_TIME_TAG: tick.astimezone(UTC).isoformat()})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"backup window {old} was MISSED" in failure.event_specific_data.user_failure_data.description
