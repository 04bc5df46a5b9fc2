"""The production instance (``deploy/dagster.yaml``) against the machine's PostgreSQL, in a throw-away
database: it loads with PostgreSQL run, event-log and schedule storage, the queued coordinator's rules, run
retries and run monitoring, and a real backup run is stored there and read back."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from assets.partitions import backup_partition_key, last_window_key
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from tests.conftest import local_region

REPO = Path(__file__).resolve().parents[2]


def test_the_production_instance_runs_on_postgresql(scratch_pg, tmp_path, monkeypatch, demo_db, write_config):
    url = urlsplit(scratch_pg())
    for var, value in (("HOST", url.hostname), ("PORT", str(url.port or 5432)), ("DB", url.path.lstrip("/")),
                       ("USER", url.username or "postgres"), ("PASSWORD", url.password or "")):
        monkeypatch.setenv(f"OPS_DAGSTER_PG_{var}", value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "a"), local_region(tmp_path, "b")]))
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        # connections kept open (jobs/storage.py), in this process and in every run's process
        for storage in (instance.run_storage, instance.event_log_storage):
            assert type(storage._engine.pool).__name__ == "QueuePool", storage
        ref = instance.get_ref()
        assert (ref.storage_data.module_name, ref.storage_data.class_name) == ("jobs.storage", "PooledPostgresStorage")
        with DagsterInstance.from_ref(ref) as child:  # what a launched run loads
            assert type(child.event_log_storage._engine.pool).__name__ == "QueuePool"
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "OpsRunCoordinator"
        limits = {(rule["key"], str(rule.get("value"))): rule["limit"]
                  for rule in coordinator.get_run_queue_config().tag_concurrency_limits}
        assert limits[("ops/database", "{'applyLimitPerUniqueValue': True}")] == 1  # one run per database
        assert limits[("ops/kind", "restore")] == 2  # restore tests on their own key, never every slot
        assert coordinator.get_run_queue_config().max_concurrent_runs == 8
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert not instance.run_retries_retry_on_asset_or_op_failure  # a corrupt backup is not retried
        assert instance.run_monitoring_enabled
        defs = build_definitions(cfg)
        window = last_window_key(cfg, datetime.now(UTC))
        result = defs.resolve_job_def("backup_job").execute_in_process(
            partition_key=backup_partition_key("booking", window), instance=instance)
        assert result.success
        stored = instance.get_run_by_id(result.run_id)
        assert stored.status.value == "SUCCESS" and stored.tags["ops/kind"] == "backup"
        assert instance.get_latest_materialization_event(
            result.asset_materializations_for_node("backup_pipeline")[0].asset_key) is not None


def test_the_units_name_files_that_exist_and_hold_no_secret():
    units = sorted((REPO / "deploy" / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"ops-code-server.service", "ops-webserver.service", "ops-daemon.service",
                                       "ops-celery-worker@.service"}
    for unit in units:
        text = unit.read_text()
        assert "EnvironmentFile=/etc/ops_project/ops.env" in text
        for path in re.findall(r"/opt/ops_project/([\w./-]+)", text):
            if not path.startswith(".venv"):
                assert (REPO / path).exists(), f"{unit.name} names {path}, which is not in the repository"
        assert not re.search(r"(?i)(password|secret|token)=\S", text)
    example = (REPO / "deploy" / "ops.env.example").read_text()
    assert re.search(r"^OPS_DAGSTER_PG_PASSWORD=$", example, re.M)  # the example holds no value
    for var in re.findall(r"\{env: (\w+)\}", (REPO / "deploy" / "dagster.yaml").read_text()):
        assert re.search(rf"^{var}=", example, re.M), f"{var} is not in deploy/ops.env.example"


def test_the_celery_workers_file_agrees_with_the_executor(tmp_path, write_config):
    """deploy/celery-worker.yaml holds what the executor is configured with (jobs/executors.py) for the default
    execution.celery keys: workers and runs must agree on the broker variable, the queue and the acks."""
    import yaml

    from jobs.executors import celery_settings

    cfg = load_config(write_config([{"name": "b", "engine": "sqlite", "path": str(tmp_path / "b.db")}],
                                   [local_region(tmp_path, "a")], execution={"executor": "celery"}))
    shipped = yaml.safe_load((REPO / "deploy" / "celery-worker.yaml").read_text())["execution"]["config"]
    assert shipped == celery_settings(cfg)
    unit = (REPO / "deploy" / "systemd" / "ops-celery-worker@.service").read_text()
    assert f"-q {cfg.execution.celery.queue} " in unit
    example = (REPO / "deploy" / "ops.env.example").read_text()
    assert cfg.execution.celery.broker_url_env in example
