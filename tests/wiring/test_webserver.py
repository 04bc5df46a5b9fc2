"""End to end through a running Dagster webserver and daemon, driven over GraphQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from assets.partitions import last_window_key, window_partitions
from ops_project.backups.catalog import list_backups
from ops_project.backups.layout import backup_prefix, data_name
from ops_project.clients import Clients
from ops_project.config import load_config
from tests import servers
from tests.conftest import local_region

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def dagster_dev(tmp_path, demo_db, write_config, receiver):
    """``dagster dev`` (webserver + daemon) on the SQLite storage of a DAGSTER_HOME, as the README runs it, with
    alerts going to a real HTTP receiver (``receiver``)."""
    config = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                          [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                          alerts={"webhook_url_env": "OPS_T_WEBHOOK", "state_dir": str(tmp_path / "alerts")})
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The shipped instance settings: one backup per database at a time, restore tests one at a time on their own
    # key (a backfill over many windows queues), and runs launched from the UI or a backfill get their ops/* tags
    # from the run coordinator.
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.local.yaml").read_text())
    with servers.dagster_dev(home, config, tmp_path / "dagster-dev.log",
                             env={"OPS_T_WEBHOOK": receiver[0] + "/hooks/T000/B000/XXXX"}) as port:
        yield load_config(config), port


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
        complete = [e for e in list_backups(Clients(cfg).store(region), "booking") if e.complete]
        assert window in [e.manifest.partition_key for e in complete]  # (the daemon's schedule may add its own)
    # The UI's view: the location, its jobs and schedules, and the materialised partition.
    query = """{ assetOrError(assetKey: {path: ["database_backup"]}) { ... on Asset {
                 assetMaterializations(limit: 1) { partition runId } } } }"""
    data = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10).json()["data"]
    mat = data["assetOrError"]["assetMaterializations"][0]
    assert mat["runId"] == run_id and mat["partition"] == f"booking|{window}"


def wait_for_alert(received: list, text: str, timeout: float = 150) -> dict:
    """The daemon's sensors tick every 30 s: wait for a Slack message containing ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _path, body in list(received):
            if text in body.get("text", ""):
                return body
        time.sleep(1)
    pytest.fail(f"no alert containing {text!r} within {timeout:.0f} s; got {[b.get('text') for _, b in received]}")


def test_failed_checks_alert_through_the_daemon_on_sqlite_storage(dagster_dev, receiver):
    """The README's own setup: a DAGSTER_HOME (SQLite, one event database per run), the daemon ticking the real
    sensors. A verified RPO that fails (no backup verified yet) while its run succeeds must alert, once."""
    cfg, port = dagster_dev
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    time.sleep(2)  # let the sensors' first tick (which only records where history ends) happen first
    run_ids = []
    for _ in range(2):
        run_id = client.submit_job_execution("verified_rpo_job")
        deadline = time.monotonic() + 120
        while client.get_run_status(run_id) not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE):
            assert time.monotonic() < deadline
            time.sleep(1)
        run_ids.append(run_id)
    alert = wait_for_alert(receiver[1], "check rpo failed on verified_rpo")
    assert "booking: no backup has passed restore verification" in alert["text"]
    time.sleep(35)  # another tick: the second failing run is the same problem, not a second alert
    assert len([b for _, b in receiver[1] if "check rpo failed" in b.get("text", "")]) == 1


def gql(port: int, query: str, variables: dict | None = None) -> dict:
    resp = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}},
                      timeout=30)
    body = resp.json()
    assert "errors" not in body, body
    return body["data"]


def test_restore_verification_backfill_over_windows(dagster_dev, receiver):
    """Backups for three past windows (one of them corrupt in the DR region) and one window without: a backfill over
    all four, through the daemon. The corrupt window fails and alerts; the window without a backup is skipped."""
    from ops_project.backups.replicate import replicate
    from ops_project.backups.take import take_backup
    from ops_project.backups.windows import make_window

    cfg, port = dagster_dev
    windows = window_partitions(cfg)
    keys = windows.get_partition_keys(current_time=datetime.now(UTC))[-6:-2]
    primary, dr = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[-1])
    for key in keys[:3]:  # as the schedule would have taken them, each just after its window ended
        tw = windows.time_window_for_partition_key(key)
        window = make_window(key, tw.start, tw.end, None)
        manifest = take_backup(cfg.databases[0], primary, cfg.backup, window=window,
                               now=lambda end=tw.end: end + timedelta(minutes=1))
        replicate(primary, dr, "booking", manifest.backup_id)
        if key == keys[1]:  # damaged at rest in the DR region
            path = dr.root / (backup_prefix("booking", manifest.backup_id) + data_name("sqlite", False))
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
    launched = gql(port, """
        mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
          __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
                   {"p": {"partitionNames": [f"booking|{k}" for k in keys],
                          "assetSelection": [{"path": ["restore_verification"]}]}})
    result = launched["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    backfill_id = result["backfillId"]

    deadline = time.monotonic() + 300
    while True:
        status = gql(port, """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                     ... on PartitionBackfill { status } } }""", {"id": backfill_id})
        state = status["partitionBackfillOrError"]["status"]
        if state in ("COMPLETED", "FAILED", "CANCELED", "COMPLETED_SUCCESS", "COMPLETED_FAILED"):
            break
        assert time.monotonic() < deadline, f"backfill still {state}"
        time.sleep(2)
    runs = gql(port, """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
                 ... on Runs { results { runId status startTime endTime tags { key value } } } } }""",
               {"id": backfill_id})["runsOrError"]["results"]
    by_window = {next(t["value"] for t in r["tags"] if t["key"] == "dagster/partition/window"): r for r in runs}
    assert set(by_window) == set(keys)
    for run in runs:  # a backfill's runs carry the scheduled runs' tags (the run coordinator adds them)
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["ops/kind"] == "restore" and "ops/database" not in tags, tags  # restore tests: their own key
    assert [by_window[k]["status"] for k in keys] == ["SUCCESS", "FAILURE", "SUCCESS", "SUCCESS"]
    # The corrupt window fails with what it is; the window without a backup succeeds with nothing to verify.
    events = gql(port, """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
                 __typename ... on ExecutionStepFailureEvent { error { message } failureMetadata { description } }
                 } } } }""", {"id": by_window[keys[1]]["runId"]})["logsForRun"]["events"]
    failures = [e["failureMetadata"]["description"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
    assert any("FAILED restore verification" in m and "stored_sha256" in m for m in failures), failures
    # ... and the check sensor, ticking in the daemon, pages for it once (not once more for the failed run).
    alert = wait_for_alert(receiver[1], f"restore_verification for booking|{keys[1]}: the backup failed restore")
    assert "stored_sha256" in alert["text"]
    time.sleep(35)
    assert len([b for _, b in receiver[1] if keys[1] in b.get("text", "")]) == 1
    # One restore test at a time (the embedded instance's limit on their own key): the runs did not overlap.
    spans = sorted((r["startTime"], r["endTime"]) for r in runs)
    assert all(later[0] >= earlier[1] - 0.01 for earlier, later in zip(spans, spans[1:], strict=False)), spans
    # Every verified backup carries a passing verdict, so retention and the verified RPO rely on it.
    verified = [e for e in list_backups(dr, "booking") if e.verified]
    # (only the windows of this test: backup_schedule runs in the daemon too and may take the newest window)
    assert sorted(e.manifest.partition_key for e in verified if e.manifest.partition_key in keys) == \
        [keys[0], keys[2]]
