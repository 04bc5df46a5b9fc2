"""DR drills: every scenario reports RTO/RPO, the report lands in the DR region, and nothing live is touched."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dagster import DagsterInstance, build_schedule_context

from assets.drills import drill_partitions
from ops_project.backups.drills import DrillContext, run_drill
from ops_project.backups.replicate import replicate
from ops_project.backups.take import take_backup
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from tests.conftest import local_region, s3_region, unique


def fingerprint(store) -> dict[str, str]:
    return {o.key: hashlib.sha256(store.get_bytes(o.key)).hexdigest() for o in store.list("")}


def test_weekly_drill_through_dagster_touches_nothing_live(tmp_path, demo_db, s3_env, write_config):
    bucket = s3_env[0].make_bucket(unique("dr"))
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1"),
                                    s3_region("eu-west-1", bucket, "OPS_T_ENDPOINT_A")]))
    primary, dr = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[1])
    ids = []
    for _ in range(2):
        ids.append(take_backup(cfg.databases[0], primary, cfg.backup).backup_id)
        replicate(primary, dr, "booking", ids[-1])
        time.sleep(1.05)
    live_before = hashlib.sha256(Path(demo_db).read_bytes()).hexdigest()
    primary_before, dr_before = fingerprint(primary), fingerprint(dr)

    defs = build_definitions(cfg)
    week = drill_partitions(cfg).get_partition_keys(current_time=datetime.now(UTC))[-1]
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("dr_drill_job").execute_in_process(partition_key=week, instance=instance)
    assert result.success
    checks = {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert set(checks) == {"scenario_region_loss", "scenario_corrupt_latest", "scenario_database_loss"}
    assert all(c.passed for c in checks.values()), {n: c.description for n, c in checks.items()}
    (mat,) = result.asset_materializations_for_node("dr_drill")
    for scenario in ("region_loss", "corrupt_latest", "database_loss"):  # numbers, so they plot week over week
        assert isinstance(mat.metadata[f"{scenario}_rto_achieved_seconds"].value, float)
        assert isinstance(mat.metadata[f"{scenario}_rpo_achieved_minutes"].value, float)
    corrupt = checks["scenario_corrupt_latest"]
    assert f"{ids[1]} rejected" in corrupt.description and f"fell back to {ids[0]}" in corrupt.description
    assert corrupt.metadata["rpo_achieved_minutes"].value > 0

    report = dr.get_bytes(f"drills/{week}/report.md").decode()
    for scenario in ("region_loss", "corrupt_latest", "database_loss"):
        assert f"| {scenario} | booking | eu-west-1 |" in report
    assert "PASSED" in report and "list a tenant's services" in report

    # Nothing live was touched: the database, the primary region, and the DR region's backups are as they were.
    assert hashlib.sha256(Path(demo_db).read_bytes()).hexdigest() == live_before
    assert fingerprint(primary) == primary_before
    dr_after = fingerprint(dr)
    assert {k: v for k, v in dr_after.items() if not k.startswith("drills/")} == dr_before


def test_drill_fails_honestly_without_a_secondary_region(tmp_path, demo_db, write_config):
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "only")]))
    take_backup(cfg.databases[0], Clients(cfg).store(cfg.primary), cfg.backup)
    report = run_drill(DrillContext(cfg=cfg, stores={}), "w1")
    assert not report.passed
    region_loss = next(r for r in report.results if r.scenario == "region_loss")
    assert "no secondary region" in region_loss.notes[0]


def test_drill_schedule_is_weekly_in_johannesburg():
    from dagster._utils.schedules import cron_string_iterator

    from ops_project.definitions import defs

    schedule = defs.resolve_schedule_def("dr_drill_schedule")
    jnb = ZoneInfo("Africa/Johannesburg")
    assert schedule.execution_timezone == "Africa/Johannesburg"
    it = cron_string_iterator(datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp(), schedule.cron_schedule,
                              schedule.execution_timezone)
    first, second = next(it), next(it)
    assert first.astimezone(jnb).strftime("%a %H:%M") == "Sun 02:00" and (second - first).days == 7
    now = datetime.now(jnb)  # the shipped default's weeks begin before its first backup: use the last tick
    sunday = (now - timedelta(days=(now.weekday() + 1) % 7)).replace(hour=2, minute=0, second=0, microsecond=0)
    tick = sunday if sunday <= now else sunday - timedelta(days=7)
    (req,) = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick,
                                                           repository_def=defs.get_repository_def())).run_requests
    week = (tick - timedelta(days=7)).strftime("%Y-%m-%d")
    assert req.partition_key == week and req.run_key == f"drill|{week}"


def test_postgres_drill_restores_into_a_scratch_database(tmp_path, pg_booking, write_config, monkeypatch):
    import psycopg

    monkeypatch.setenv("OPS_T_CORE_URL", pg_booking)
    cfg = load_config(write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE_URL"}],
                                   [local_region(tmp_path, "a"), local_region(tmp_path, "b")]))
    primary, dr = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[1])
    manifest = take_backup(cfg.databases[0], primary, cfg.backup, pg_url=pg_booking)
    replicate(primary, dr, "core", manifest.backup_id)
    ctx = DrillContext(cfg=cfg, stores={"b": dr}, pg_server_url=lambda _db: pg_booking)
    report = run_drill(ctx, "w1", ["region_loss", "database_loss"])
    assert report.passed, report.markdown()
    loss = next(r for r in report.results if r.scenario == "database_loss")
    assert any("find a customer by email" in n for n in loss.notes) and loss.rto_seconds > 0
    with psycopg.connect(pg_booking) as con:
        left = con.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'ops_drill_%' "
                           "OR datname LIKE 'ops_verify_%'").fetchone()[0]
    assert left == 0
