"""The production instance's run queue under the daemon: ``deploy/dagster.yaml`` on a throw-away PostgreSQL
database, ``dagster dev`` (webserver + daemon) ticking ``backup_schedule`` every minute, and a 40-window restore
backfill of one tenant queued just before the tick. Backups never overlap another backup of the same database,
and the queued backfill does not delay the backup: restore tests have a key of their own (they read copies, not
the live database), so the backup neither waits behind the queued ones nor for the ones already running."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef
from dagster_graphql import DagsterGraphQLClient

from assets.partitions import window_partitions
from ops_project.config import load_config
from tests import servers
from tests.conftest import local_region, sqlite_tenants

REPO = Path(__file__).resolve().parents[2]
TENANTS = ["tenant-a", "tenant-b", "tenant-c"]  # batches of two: tenant-a..tenant-b, then tenant-c alone


@pytest.fixture
def production(tmp_path, scratch_pg, write_config, demo_db_template, monkeypatch):
    url = urlsplit(scratch_pg())
    env = {"OPS_DAGSTER_PG_HOST": url.hostname, "OPS_DAGSTER_PG_PORT": str(url.port or 5432),
           "OPS_DAGSTER_PG_DB": url.path.lstrip("/"), "OPS_DAGSTER_PG_USER": url.username or "postgres",
           "OPS_DAGSTER_PG_PASSWORD": url.password or ""}
    dbs = sqlite_tenants(tmp_path, demo_db_template, TENANTS)
    start = (datetime.now(UTC) - timedelta(minutes=90)).replace(second=0, microsecond=0, tzinfo=None)
    config = write_config(dbs, [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                          timezone="UTC", backup={"cron": "* * * * *", "start": start.isoformat(),
                                                  "batch_size": 2})
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    for var, value in env.items():
        monkeypatch.setenv(var, value)  # this test's own view of the instance reads the same storage
    with servers.dagster_dev(home, config, tmp_path / "dagster-dev.log", env=env) as port:
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            yield load_config(config), port, instance


def _span(instance, run_id: str) -> tuple[float, float]:
    at = {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS,
                                                    DagsterEventType.RUN_FAILURE}):
        at.setdefault(entry.dagster_event.event_type, entry.timestamp)
    return at[DagsterEventType.RUN_START], at.get(DagsterEventType.RUN_SUCCESS, at.get(DagsterEventType.RUN_FAILURE))


def _queue_times(instance, run_id: str) -> tuple[float, float]:
    """When the run joined the queue and when the queue let it go (its launch: RUN_STARTING)."""
    at = {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING}):
        at.setdefault(entry.dagster_event.event_type, entry.timestamp)
    return at[DagsterEventType.RUN_ENQUEUED], at[DagsterEventType.RUN_STARTING]


def _databases(run) -> set[str]:
    if "ops/database" in run.tags:
        return {run.tags["ops/database"]}
    if "ops/batch" not in run.tags:
        return set()  # the fleet's own runs (verified RPO, retention): no database of their own
    first, last = run.tags["ops/batch"].split("..")
    return {t for t in TENANTS if first <= t <= last}


def test_backups_never_overlap_a_database_and_a_queued_backfill_never_delays_them(production):
    cfg, port, instance = production
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    while datetime.now(UTC).second < 40 or datetime.now(UTC).second > 50:  # the tick is 10-20 s away
        time.sleep(0.5)
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    windows = window_partitions(cfg).get_partition_keys(current_time=minute)[-42:-2]
    for window in windows:  # a restore backfill of tenant-a: forty windows, nothing to verify (skipped)
        client.submit_job_execution("restore_verification_job", tags={
            "dagster/partition": f"tenant-a|{window}", "dagster/partition/database": "tenant-a",
            "dagster/partition/window": window})
    tick = minute + timedelta(minutes=1)
    deadline = time.monotonic() + 300

    def created(run) -> float:
        return instance.get_run_record_by_id(run.run_id).create_timestamp.replace(tzinfo=UTC).timestamp()

    while True:  # until the backfill and the first tick's runs are done (later ticks go on every minute)
        runs = instance.get_runs()
        batch = [r for r in runs if r.tags.get("ops/batch") == "tenant-a..tenant-b"  # the tick's (an earlier
                 and r.tags.get("ops/kind") == "backup" and created(r) >= tick.timestamp() - 1]  # one may exist)
        ours = [r for r in runs if created(r) < tick.timestamp() + 30]
        if batch and all(r.is_finished for r in ours):
            break
        assert time.monotonic() < deadline, [(r.job_name, r.status) for r in runs]
        time.sleep(1)
    runs = [r for r in instance.get_runs() if r.is_finished]
    backups = [r for r in runs if r.tags.get("ops/kind") == "backup"]
    restores = [r for r in runs if r.job_name == "restore_verification_job"]
    assert len(restores) == len(windows) == 40
    # a restore test's own key only: no per-database tag that a backup of the same database would wait for
    assert all(r.tags["ops/kind"] == "restore" and "ops/database" not in r.tags and "ops/batch" not in r.tags
               for r in restores), [r.tags for r in restores]
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs), [(r.job_name, r.status) for r in runs]
    alone = [r for r in backups if r.tags.get("ops/database") == "tenant-c"]
    assert alone and "ops/batch" not in alone[0].tags  # a batch of one is a plain partition run
    # the tick's backups are scheduled runs, ahead of the backfill in the queue
    assert {r.tags["dagster/priority"] for r in backups} == {"10"}
    spans = {r.run_id: _span(instance, r.run_id) for r in runs}
    # 1. no two backups of the same database at once (the batch run counts for both of its databases)
    for i, one in enumerate(runs):
        for other in runs[i + 1:]:
            if _databases(one) & _databases(other):
                (s1, e1), (s2, e2) = spans[one.run_id], spans[other.run_id]
                assert e1 <= s2 or e2 <= s1, (one.tags, other.tags)
    # 2. the backfill was still queued when the tick's batch run was created ...
    first = min(batch, key=created)
    asked = created(first)
    started_later = [r for r in restores if _queue_times(instance, r.run_id)[1] > asked]
    assert len(started_later) >= 3, "the backfill had drained before the tick: nothing was tested"
    # ... and the queue handed the batch out at its next pass, before any restore that was still waiting: none
    # left the queue between the batch joining it and leaving it (but in the pass already under way when it
    # joined, which had read the queue before), and the ones still queued did not hold it back
    joined, left = _queue_times(instance, first.run_id)
    overtaken = [r for r in restores if joined + 1 < _queue_times(instance, r.run_id)[1] < left]
    assert overtaken == [], [(joined, left, _queue_times(instance, r.run_id)) for r in overtaken]
    assert left - joined < 12, (joined, left)  # a dequeue turn or two (1 s), not a place behind the restores
    # (that it never waits for a restore already running is Dagster's own queue rule on these tags:
    # tests/wiring/test_coordinator.py; the runs here are too short to show it by their times)
