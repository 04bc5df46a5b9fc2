"""What the UI shows is the truth, read through Dagster's own APIs (partition status, check evaluations, run
status) on the SQLite storage of the embedded default: a corrupt window is failed and its checks carry the window,
a window without a backup is missing (not failed), and a failed drill or an RPO breach fails its run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetCheckKey, DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from assets.drills import DRILL_KEY, drill_partitions
from assets.partitions import backup_partition_key, backup_partitions, window_partitions
from assets.verification import RESTORE_KEY, RPO_KEY
from ops_project.backups.layout import backup_prefix, data_name
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from tests.conftest import local_region


@pytest.fixture
def home_instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


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
