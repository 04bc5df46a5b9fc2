"""End to end through a running Dagster webserver and daemon, driven over GraphQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from assets.partitions import last_window_key
from ops_project.catalog import list_backups
from ops_project.config import load_config
from ops_project.runtime import store_for
from tests.conftest import local_region
from tests.servers import free_ports

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def dagster_dev(tmp_path, demo_db, write_config):
    config = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                          [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_ports(1)[0]
    env = dict(os.environ, DAGSTER_HOME=str(home), OPS_CONFIG=str(config))
    log = open(tmp_path / "dagster-dev.log", "wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited: {(tmp_path / 'dagster-dev.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("dagster dev did not answer within 120 s")
        time.sleep(0.5)
    try:
        yield load_config(config), port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_backup_run_launched_over_graphql(dagster_dev):
    cfg, port = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    window = last_window_key(cfg, datetime.now(UTC))
    run_id = client.submit_job_execution(
        "backup_job",
        tags={"dagster/partition": f"booking|{window}", "dagster/partition/database": "booking",
              "dagster/partition/window": window, "ops/kind": "backup", "ops/database": "booking"},
    )
    deadline = time.monotonic() + 180
    status = client.get_run_status(run_id)
    while status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
        status = client.get_run_status(run_id)
    assert status == DagsterRunStatus.SUCCESS
    for region in cfg.regions:
        complete = [e for e in list_backups(store_for(cfg, region), "booking") if e.complete]
        assert [e.manifest.partition_key for e in complete] == [window]
    # The UI's view: the location, its jobs and schedules, and the materialised partition.
    query = """{ assetOrError(assetKey: {path: ["database_backup"]}) { ... on Asset {
                 assetMaterializations(limit: 1) { partition runId } } } }"""
    data = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10).json()["data"]
    mat = data["assetOrError"]["assetMaterializations"][0]
    assert mat["runId"] == run_id and mat["partition"] == f"booking|{window}"
