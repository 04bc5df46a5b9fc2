"""The code location through Dagster's own APIs: loading, schedules, materialisation, retention."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    RunConfig,
    build_schedule_context,
)

from assets.backups import BACKUP_KEY, replica_key
from assets.partitions import backup_partition_key, last_window_key
from ops_project.backups.catalog import list_backups
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from tests.conftest import local_region, s3_region, unique
from tests.servers import SECRET_KEY

REPO = Path(__file__).resolve().parents[2]
JNB = ZoneInfo("Africa/Johannesburg")


def test_shipped_code_location_loads_and_everything_resolves():
    from ops_project.definitions import defs

    Definitions.validate_loadable(defs)
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"backup_job", "backup_retention", "restore_verification_job", "verified_rpo_job"} <= jobs
    for name in jobs:
        assert defs.resolve_job_def(name) is not None
    repo = defs.get_repository_def()
    schedules = {s.name: s for s in repo.schedule_defs}
    assert set(schedules) == {"backup_schedule", "backup_retention_schedule", "verified_rpo_schedule",
                              "dr_drill_schedule", "slow_query_schedule", "cache_warmup_schedule",
                              "capacity_report_schedule", "capacity_metrics_schedule",
                              "point_in_time_restore_schedule"}
    for s in schedules.values():
        assert s.execution_timezone == "Africa/Johannesburg"
        assert s.job_name in jobs
    sensors = {s.name: s for s in repo.sensor_defs}
    assert set(sensors) == {"release_tag_sensor", "ops_run_failure_sensor", "ops_check_failure_sensor",
                            "cache_after_release_sensor", "continuous_replication_sensor"}
    assert sensors["release_tag_sensor"].job_name == "deploy_validation_job"
    assert sensors["release_tag_sensor"].minimum_interval_seconds == 60
    graph = defs.resolve_asset_graph()
    assert graph.get(replica_key("eu-west-1")).parent_keys == {BACKUP_KEY}
    # the capacity report sits downstream of the backups, their replicas and the live measurements
    assert graph.get(AssetKey("capacity_report")).parent_keys == {BACKUP_KEY, replica_key("eu-west-1"),
                                                                 AssetKey("capacity_metrics")}


def test_dg_check_defs_and_workspace():
    env = {k: v for k, v in os.environ.items() if k != "OPS_CONFIG"}
    dg = Path(os.sys.executable).parent / "dg"
    out = subprocess.run([str(dg), "check", "defs"], cwd=REPO, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr
    assert "module_name: ops_project.definitions" in (REPO / "workspace.yaml").read_text()


def test_backup_schedule_ticks_at_window_ends_in_johannesburg():
    from ops_project.config import DEFAULT_CONFIG

    shipped = load_config(DEFAULT_CONFIG)  # its windows pinned to a start before the dates below
    defs = build_definitions(shipped.model_copy(
        update={"backup": shipped.backup.model_copy(update={"start": datetime(2026, 1, 1)})}))
    schedule = defs.resolve_schedule_def("backup_schedule")
    assert schedule.cron_schedule == "0 */4 * * *"
    tick = datetime(2026, 11, 22, 8, 0, tzinfo=JNB)  # 06:00 UTC
    repo = defs.get_repository_def()
    requests = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick,
                                                             repository_def=repo)).run_requests
    assert len(requests) == 1
    req = requests[0]
    assert req.partition_key == backup_partition_key("booking", "2026-11-22-04:00+0200")
    assert req.run_key == "backup|2026-11-22-04:00+0200|booking"
    assert req.tags["ops/database"] == "booking" and req.tags["ops/kind"] == "backup"
    assert req.tags["dagster/priority"] == "10"  # ahead of queued restore tests: a backup window closes
    # Midnight in Johannesburg closes the 20:00 window of the previous local day.
    midnight = datetime(2026, 11, 23, 0, 0, tzinfo=JNB)
    req = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=midnight,
                                                           repository_def=repo)).run_requests[0]
    assert req.partition_key.keys_by_dimension["window"] == "2026-11-22-20:00+0200"
    # The cron ticks in local time: 22:00 UTC is 00:00 SAST, a tick; 00:00 UTC (02:00 SAST) is not.
    from dagster._utils.schedules import cron_string_iterator

    it = cron_string_iterator(datetime(2026, 11, 22, 21, 30, tzinfo=UTC).timestamp(), schedule.cron_schedule,
                              schedule.execution_timezone)
    ticks = [next(it) for _ in range(3)]
    assert [t.astimezone(JNB).hour for t in ticks] == [0, 4, 8]
    assert ticks[0].astimezone(UTC).hour == 22

    retention = defs.resolve_schedule_def("backup_retention_schedule")
    it = cron_string_iterator(datetime(2026, 11, 22, 0, 0, tzinfo=UTC).timestamp(), retention.cron_schedule,
                              retention.execution_timezone)
    first = next(it)
    assert (first.astimezone(JNB).hour, first.astimezone(JNB).minute) == (3, 30)
    assert first.astimezone(UTC).hour == 1


@pytest.fixture
def local_defs(tmp_path, demo_db, write_config):
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")])
    cfg = load_config(path)
    return cfg, build_definitions(cfg)


def test_materialize_backup_and_replica_for_latest_window(local_defs):
    cfg, defs = local_defs
    window = last_window_key(cfg, datetime.now(UTC))
    job = defs.resolve_job_def("backup_job")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(partition_key=backup_partition_key("booking", window), instance=instance)
        assert result.success
        mats = {m.asset_key: m for m in result.asset_materializations_for_node("backup_pipeline")}
        meta = mats[BACKUP_KEY].metadata
        backup_id = meta["backup_id"].value
        assert meta["total_rows"].value > 1000 and meta["stored_size_bytes"].value > 0
        replica = mats[replica_key("eu-west-1")].metadata
        assert replica["backup_id"].value == backup_id and replica["replication_lag_seconds"].value >= 0
    for region in cfg.regions:
        entries = [e for e in list_backups(Clients(cfg).store(region), "booking") if e.complete]
        assert [(e.backup_id, e.manifest.partition_key) for e in entries] == [(backup_id, window)]


def test_secrets_are_env_vars_not_values(tmp_path, write_config, monkeypatch):
    monkeypatch.setenv("OPS_T_SECRET", "super-secret-value")
    path = write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_URL"}],
                        [{"name": "r1", "kind": "s3", "bucket": "b", "endpoint_url_env": "OPS_T_EP",
                          "access_key_id_env": "OPS_T_KEY", "secret_access_key_env": "OPS_T_SECRET"}],
                        backup={"encryption": {"age_recipients_env": "OPS_T_AGE"}})
    defs = build_definitions(load_config(path))
    shown = repr(defs.resources)
    assert "super-secret-value" not in shown
    assert "OPS_T_SECRET" in shown and "OPS_T_URL" in shown and "OPS_T_AGE" in shown


def test_retention_job_dry_run_then_apply(local_defs):
    cfg, defs = local_defs
    store = Clients(cfg).store(cfg.primary)
    from ops_project.backups.take import take_backup

    ids = []
    for _ in range(3):
        ids.append(take_backup(cfg.databases[0], store, cfg.backup).backup_id)
        time.sleep(1.05)
    # With keep_last 1 and no daily/weekly/monthly, two of the three go.
    tight_path = cfg.source.with_name("tight.yaml")
    doc = yaml.safe_load(cfg.source.read_text())
    doc["backup"] = {"retention": {"keep_last": 1, "daily": 0, "weekly": 0, "monthly": 0}}
    tight_path.write_text(yaml.safe_dump(doc))
    defs = build_definitions(load_config(tight_path))
    job = defs.resolve_job_def("backup_retention")
    with DagsterInstance.ephemeral() as instance:
        dry = job.execute_in_process(run_config=RunConfig(ops={"apply_retention": {"config": {"dry_run": True}}}),
                                     instance=instance)
        assert dry.success
        output = next(e for e in dry.all_events if e.event_type_value == "STEP_OUTPUT")
        plan_md = output.event_specific_data.metadata["plan"].value
        assert plan_md.count("| delete |") == 2 and "newest complete" in plan_md
        assert len([e for e in list_backups(store, "booking") if e.complete]) == 3
        real = job.execute_in_process(instance=instance)
        assert real.success
    assert [e.backup_id for e in list_backups(store, "booking")] == [ids[-1]]


def test_postgres_to_s3_with_encryption_through_dagster_resources(tmp_path, pg_booking, s3_env, write_config,
                                                                   monkeypatch):
    """EnvVar-backed resources resolve real secrets at run time, and none of them reaches the event log."""
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = next(line.split(": ")[1] for line in key.read_text().splitlines() if "public key" in line)
    identity = next(line for line in key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    monkeypatch.setenv("OPS_T_AGE", recipient)
    monkeypatch.setenv("OPS_T_AGE_ID", key.read_text())
    # A password in the URL (the server trusts local connections, so any password works): it must not leak.
    password = "pg-pass-7f3a91"
    pg_url = pg_booking.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")
    assert password in pg_url
    monkeypatch.setenv("OPS_T_CORE_URL", pg_url)
    bucket_a, bucket_b = s3_env[0].make_bucket(unique("dg-a")), s3_env[1].make_bucket(unique("dg-b"))
    path = write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE_URL"}],
                        [s3_region("af-south-1", bucket_a, "OPS_T_ENDPOINT_A"),
                         s3_region("eu-west-1", bucket_b, "OPS_T_ENDPOINT_B")],
                        backup={"encryption": {"age_recipients_env": "OPS_T_AGE"}},
                        restore={"age_identity_env": "OPS_T_AGE_ID", "scratch_on_source": True})
    cfg = load_config(path)
    defs = build_definitions(cfg)
    window = last_window_key(cfg, datetime.now(UTC))
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("backup_job").execute_in_process(
            partition_key=backup_partition_key("core", window), instance=instance)
        assert result.success
        checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert len(checks) == 9 and all(c.passed for c in checks)  # restored from eu-west-1 into a scratch db
        logged = " ".join(repr(e) for e in instance.all_logs(result.run_id))
        run_record = repr(instance.get_run_by_id(result.run_id))
    for region in cfg.regions:
        entries = [e for e in list_backups(Clients(cfg).store(region), "core") if e.complete]
        assert len(entries) == 1 and entries[0].manifest.encryption is not None
        assert entries[0].manifest.tables["public.appointments"].rows == 40000
    for secret_value in (SECRET_KEY, password, recipient, identity):
        assert secret_value not in logged and secret_value not in run_record
