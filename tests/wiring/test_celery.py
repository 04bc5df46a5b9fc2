"""The backup job's steps on real Celery workers (``dagster-celery``) over the machine's RabbitMQ broker; a worker
killed in the middle of a step has that step run again by another worker, and the run still ends green only
because the work was done."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets.backups import BACKUP_KEY, replica_key
from assets.partitions import backup_partition_key, last_window_key
from assets.verification import RESTORE_KEY
from jobs.executors import celery_settings
from ops_project.config import load_config
from tests import servers
from tests.conftest import local_region, sqlite_tenants

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
TENANTS = [f"tenant-{i}" for i in range(4)]


@pytest.fixture(scope="module")
def rabbitmq():
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=5).close()
    except OSError as exc:
        pytest.fail(f"RabbitMQ is not reachable on 127.0.0.1:5672 ({exc}): the Celery tests need the broker")
    return BROKER


@pytest.fixture
def celery_setup(tmp_path, write_config, demo_db_template, rabbitmq):
    queue = f"ops-test-{uuid.uuid4().hex[:8]}"  # a queue of this test's own on the shared broker
    dbs = sqlite_tenants(tmp_path, demo_db_template, TENANTS)
    config = write_config(dbs, [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                          backup={"batch_workers": 1},
                          execution={"executor": "celery", "celery": {"broker_url_env": "OPS_T_BROKER",
                                                                      "queue": queue}})
    cfg = load_config(config)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    worker_yaml = tmp_path / "celery.yaml"
    worker_yaml.write_text(yaml.safe_dump({"execution": {"config": celery_settings(cfg)}}))
    env = dict(os.environ, DAGSTER_HOME=str(home), OPS_CONFIG=str(config), OPS_T_BROKER=rabbitmq,
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # the worker CLI starts `celery`
    workers: list[subprocess.Popen] = []

    def start_worker(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                 "-y", str(worker_yaml), "-q", queue, "-n", name, "--",
                                 "--concurrency=1"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        workers.append(proc)
        return proc

    yield cfg, home, env, start_worker, tmp_path
    for proc in workers:
        servers.stop_group(proc)


def _worker_events(instance, run_id: str) -> list[str]:
    """The hostnames of the Celery workers that started the run's step, in order."""
    out = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data.metadata
        if "Celery worker" in data:
            out.append(data["Celery worker"].value)
    return out


def test_backup_steps_run_on_celery_workers_and_a_killed_workers_step_runs_again(celery_setup):
    cfg, home, env, start_worker, tmp_path = celery_setup
    window = last_window_key(cfg, datetime.now(UTC))
    tags = {ASSET_PARTITION_RANGE_START_TAG: str(backup_partition_key(TENANTS[0], window)),
            ASSET_PARTITION_RANGE_END_TAG: str(backup_partition_key(TENANTS[-1], window))}
    first = start_worker("first")
    run_log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed below
    run = subprocess.Popen([str(BIN / "dagster"), "job", "execute", "-m", "ops_project.definitions", "-j",
                            "backup_job", "--tags", json.dumps(tags)], cwd=REPO, env=env, stdout=run_log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            deadline = time.monotonic() + 240
            run_id = None
            while not (run_id and _worker_events(instance, run_id)):  # the first worker took the step
                assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
                assert first.poll() is None, (tmp_path / "worker-first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (tmp_path / "worker-first.log").read_text()[-3000:]
                runs = instance.get_runs()
                run_id = runs[0].run_id if runs else None
                time.sleep(0.1)
            os.killpg(first.pid, signal.SIGKILL)  # in the middle of the step: its task was never acknowledged
            first.wait()
            assert not [e for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)], \
                "the step finished before its worker was killed: nothing was tested"
            start_worker("second")
            assert run.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()[-3000:]
            # the step started on the first worker, then again, to the end, on the second
            assert [host.split("@")[0] for host in _worker_events(instance, run_id)] == ["first", "second"]
            assert instance.get_run_by_id(run_id).is_success
            mats = {(r.asset_key, r.partition_key) for key in (BACKUP_KEY, replica_key("eu-west-1"), RESTORE_KEY)
                    for r in instance.fetch_materializations(key, limit=100).records}
            for tenant in TENANTS:
                pk = str(backup_partition_key(tenant, window))
                assert {(BACKUP_KEY, pk), (replica_key("eu-west-1"), pk), (RESTORE_KEY, pk)} <= mats
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        run_log.close()
