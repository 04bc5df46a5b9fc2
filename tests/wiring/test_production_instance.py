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
from dagster_postgres.event_log import PostgresEventLogStorage

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
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
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
        assert limits[("ops/database", "{'applyLimitPerUniqueValue': True}")] == 1  # one backup per database
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
                                       "ops-celery-worker@.service", "ops-litestream.service"}
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


def _instance(home: Path, scratch_pg, monkeypatch) -> DagsterInstance:
    url = urlsplit(scratch_pg())
    for var, value in (("HOST", url.hostname), ("PORT", str(url.port or 5432)), ("DB", url.path.lstrip("/")),
                       ("USER", url.username or "postgres"), ("PASSWORD", url.password or "")):
        monkeypatch.setenv(f"OPS_DAGSTER_PG_{var}", value)
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _commits(instance: DagsterInstance) -> int:
    with instance.event_log_storage._engine.connect() as conn:
        return conn.exec_driver_sql("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                                    ).scalar()


def _next_xid(instance: DagsterInstance) -> int:
    """The next transaction id the server will assign: each write transaction takes one."""
    with instance.event_log_storage._engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").scalar())


def _planned(instance: DagsterInstance, run_id: str) -> list[tuple]:
    out = []
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry.dagster_event
        if event is None or "PLANNED" not in event.event_type_value:
            continue
        data = event.event_specific_data
        out.append((event.event_type_value, event.step_key, data.asset_key.to_user_string(),
                    getattr(data, "check_name", None), getattr(data, "partition", None),
                    sorted(data.partitions_subset.get_partition_keys()) if data.partitions_subset else None))
    return sorted(out, key=repr)


def test_a_batch_runs_planned_events_are_stored_in_one_transaction(scratch_pg, tmp_path, monkeypatch, write_config):
    """A batch run's planned events (3 assets × 30 databases, and its checks) are stored in one transaction
    (jobs/storage.py) instead of a few each; what is stored is the same as when Dagster stores them one by one
    (batching off); a batch that fails half-way is rolled back and stored one by one, nothing twice."""
    from dagster_postgres.event_log import PostgresEventLogStorage as Shipped

    from schedules.backups import backup_requests

    names = [f"t{i:02d}" for i in range(30)]
    cfg = load_config(write_config([{"name": n, "engine": "sqlite", "path": str(tmp_path / f"{n}.db")} for n in names],
                                   [local_region(tmp_path, "a"), local_region(tmp_path, "b")],
                                   backup={"batch_size": 30}))
    job = build_definitions(cfg).resolve_job_def("backup_job")
    window = last_window_key(cfg, datetime.now(UTC))
    [request] = backup_requests(cfg, window, names)
    with _instance(tmp_path / "home", scratch_pg, monkeypatch) as instance:
        storage = instance.event_log_storage
        stored, xids = {}, {}
        for size in ("0", "1000"):  # one by one (Dagster's default), then as a batch
            monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", size)
            before = _next_xid(instance)
            run = instance.create_run_for_job(job, tags=request.tags)
            xids[size] = _next_xid(instance) - before
            stored[size] = _planned(instance, run.run_id)
        assert len(stored["0"]) >= 3 * 30, stored["0"][:5]  # one per asset and database, and the checks
        planned = {e[4] for e in stored["0"] if e[4]} | {k for e in stored["0"] if e[5] for k in e[5]}
        assert planned == {str(backup_partition_key(n, window)) for n in names}
        assert stored["1000"] == stored["0"]
        assert xids["0"] > 90, xids  # a write transaction (or more) per event
        assert xids["1000"] <= 5, xids  # the run, its tags, and one for all its planned events

        real, calls = Shipped.store_event, []

        def fails_once(self, event):
            calls.append(1)
            if len(calls) == 7:
                raise RuntimeError("connection lost")
            return real(self, event)

        monkeypatch.setattr(Shipped, "store_event", fails_once)
        run = instance.create_run_for_job(job, tags=request.tags)
        assert len(calls) > len(stored["0"])  # the batch failed and Dagster stored them again, one by one
        assert _planned(instance, run.run_id) == stored["0"]
        assert type(storage).store_event_batch is not Shipped.store_event_batch
