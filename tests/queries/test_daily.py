"""``slow_query_report`` through Dagster: two days materialised from a D1-shaped query log; the second day shows
the query that got slower (and only it) as regressed, a new shape and a gone one; a day without statements
fails; the schedule asks for yesterday."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, MultiPartitionKey, build_schedule_context

from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from ops_project.queries.daily import report_key
from tests.conftest import local_region

JNB = ZoneInfo("Africa/Johannesburg")
DAY1, DAY2, DAY3 = "2026-11-20", "2026-11-21", "2026-11-22"
A = "SELECT starts_at, ends_at FROM appointments WHERE staff_id = ? AND starts_at < ?"
B = "SELECT id FROM tenants WHERE slug = ?"
GONE = "SELECT count(*) FROM payments WHERE status = 'refunded'"
NEW = "SELECT id, name FROM staff WHERE tenant_id = 7 ORDER BY id"


def _lines(day: str, shapes: dict[str, tuple[int, float]], rng: random.Random) -> list[str]:
    start = datetime.fromisoformat(day).replace(hour=8, tzinfo=JNB)
    out = []
    for sql, (calls, ms) in shapes.items():
        for i in range(calls):
            at = start + timedelta(seconds=37 * i)
            out.append(json.dumps({"ts": at.astimezone(ZoneInfo("UTC")).isoformat(), "sql": sql,
                                   "duration_ms": round(ms * (0.8 + 0.4 * rng.random()), 4),
                                   "rows_read": 3, "rows_written": 0}))
    return out


@pytest.fixture
def setup(tmp_path, demo_db, write_config):
    rng = random.Random(11)
    log = tmp_path / "logs" / "queries.jsonl"
    log.parent.mkdir()
    lines = _lines(DAY1, {A: (120, 1.0), B: (60, 0.3), GONE: (30, 4.0)}, rng)
    lines += _lines(DAY2, {A: (120, 6.0), B: (60, 0.3), NEW: (30, 0.5)}, rng)
    log.write_text("\n".join(lines) + "\n")
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1")],
                                   queries={"sources": [{"database": "booking", "kind": "sqlite_jsonl",
                                                         "paths": [str(tmp_path / "logs" / "*.jsonl")]}]}))
    return cfg, build_definitions(cfg)


def test_two_days_then_a_regression_a_new_and_a_gone_shape(setup):
    cfg, defs = setup
    job = defs.resolve_job_def("slow_query_job")
    store = Clients(cfg).store(cfg.primary)
    with DagsterInstance.ephemeral() as instance:
        results = {day: job.execute_in_process(partition_key=MultiPartitionKey({"database": "booking", "day": day}),
                                               instance=instance) for day in (DAY1, DAY2)}
        meta = results[DAY2].asset_materializations_for_node("slow_query_report")[0].metadata
        assert meta["statements"].value == 210 and meta["regressed"].value == 1
        assert meta["new_shapes"].value == 1 and meta["gone_shapes"].value == 1
        assert "REGRESSED" in meta["report"].value
        first = json.loads(store.get_bytes(report_key("booking", DAY1)))
        second = json.loads(store.get_bytes(report_key("booking", DAY2)))
        assert first["statements"] == 210 and first["compared_with"] is None and second["compared_with"] == DAY1
        # the planner of the database itself (opened read-only): payments has no index on status
        assert [(h["table"], h["plan"]) for h in first["hints"]] == [("payments", "SCAN payments")]
        assert results[DAY1].asset_materializations_for_node("slow_query_report")[0].metadata[
            "index_hints"].value == 1
        shapes = {q["query"]: q["fingerprint"] for q in second["queries"]}
        slow = next(f for text, f in shapes.items() if "FROM appointments" in text)
        assert [r["fingerprint"] for r in second["regressed"]] == [slow]  # B, unchanged, is not
        assert second["regressed"][0]["p_value"] < 0.01
        assert second["new"] == [shapes[next(t for t in shapes if "FROM staff" in t)]]
        assert len(second["gone"]) == 1 and "refunded" not in json.dumps(second)  # literals stay out
        empty = job.execute_in_process(partition_key=MultiPartitionKey({"database": "booking", "day": DAY3}),
                                       instance=instance, raise_on_error=False)
        assert not empty.success
        failure = next(e for e in empty.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.event_specific_data.user_failure_data.description
        assert f"no statement of booking logged on {DAY3}" in message and "queries.jsonl" in message


def test_the_schedule_asks_for_yesterday(setup):
    _cfg, defs = setup
    schedule = defs.resolve_schedule_def("slow_query_schedule")
    tick = datetime(2026, 11, 23, 0, 15, tzinfo=JNB)
    (req,) = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick,
                                                           repository_def=defs.get_repository_def())).run_requests
    assert req.partition_key == MultiPartitionKey({"database": "booking", "day": DAY3})
    assert req.tags["ops/kind"] == "queries"


def test_the_cli_report_is_the_assets_report(setup):
    import subprocess
    import sys

    cfg, _defs = setup
    store = Clients(cfg).store(cfg.primary)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "ops_project", "--config", str(cfg.source), "queries", "report",
                               *args], capture_output=True, text=True, timeout=120)

    for day in (DAY1, DAY2):
        done = cli("--database", "booking", "--day", day)
        assert done.returncode == 0, done.stderr
    assert "Since 2026-11-20: 1 new, 1 gone, 1 regressed." in done.stdout and report_key("booking", DAY2) in done.stdout
    assert json.loads(store.get_bytes(report_key("booking", DAY2)))["regressed"]
    assert cli("--database", "nope", "--day", DAY1).returncode == 2
    assert cli("--database", "booking", "--day", "2026-11-31").returncode == 2
    empty = cli("--database", "booking", "--day", DAY3)
    assert empty.returncode == 1 and "Traceback" not in empty.stderr and f"on {DAY3}" in empty.stderr
    assert not store.exists(report_key("booking", DAY3))  # nothing half-written or wrongly marked good


def test_a_regression_is_tied_to_the_release_deployed_between_the_days(tmp_path, demo_db, write_config):
    import logging

    from dagster import AssetMaterialization
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    today = datetime.now(JNB).date()
    day1, day2 = (today - timedelta(days=2)).isoformat(), (today - timedelta(days=1)).isoformat()
    rng = random.Random(5)
    log = tmp_path / "q.jsonl"
    log.write_text("\n".join(_lines(day1, {A: (120, 1.0), B: (60, 0.3)}, rng)
                             + _lines(day2, {A: (120, 6.0), B: (60, 0.3)}, rng)) + "\n")
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1")],
                                   releases={"repo": str(tmp_path / "booking.git")},
                                   queries={"sources": [{"database": "booking", "kind": "sqlite_jsonl",
                                                         "paths": [str(log)]}]}))
    defs = build_definitions(cfg)
    job = defs.resolve_job_def("slow_query_job")
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("releases", ["v1.3.0"])
        # validated (deployed) on the morning of the second day: stored as Dagster stores it, at that time
        deployed = datetime.fromisoformat(day2).replace(hour=6, tzinfo=JNB)
        event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, "__ASSET_JOB", event_specific_data=
                             StepMaterializationData(AssetMaterialization("deploy_validation", partition="v1.3.0",
                                                                          metadata={"verdict": "passed"})))
        instance.store_event(EventLogEntry(error_info=None, level=logging.INFO, user_message="", run_id="",
                                           timestamp=deployed.timestamp(), dagster_event=event))
        for day in (day1, day2):
            assert job.execute_in_process(partition_key=MultiPartitionKey({"database": "booking", "day": day}),
                                          instance=instance).success
    second = json.loads(Clients(cfg).store(cfg.primary).get_bytes(report_key("booking", day2)))
    (regressed,) = second["regressed"]
    assert regressed["release"]["tag"] == "v1.3.0" and "between the two days" in regressed["release"]["how"]


def test_tie_rules():
    from ops_project.queries.release_tie import Deployment, tie

    d1, d2_end = datetime(2026, 11, 20, tzinfo=JNB), datetime(2026, 11, 22, tzinfo=JNB)
    old = Deployment("v1.0.0", datetime(2026, 11, 1, tzinfo=JNB), True)
    new = Deployment("v1.1.0", datetime(2026, 11, 21, 9, tzinfo=JNB), True)
    newer = Deployment("v1.1.1", datetime(2026, 11, 21, 15, tzinfo=JNB), True)
    later = Deployment("v1.2.0", datetime(2026, 11, 25, tzinfo=JNB), True)
    assert tie({}, [old, new, newer, later], d1, d2_end)["release"]["tag"] == "v1.1.1"
    live = tie({}, [old, later], d1, d2_end)["release"]
    assert live["tag"] == "v1.0.0" and "no release in between" in live["how"]
    assert tie({}, [later], d1, d2_end)["release"] is None


def test_the_last_days_decide_what_is_new_and_pool_into_a_baseline():
    """A shape seen three days ago is not new today though yesterday lacked it; a shape that crept up over the
    week is slower than the pooled days, though no more than 1.5x slower than yesterday."""
    from ops_project.queries.daily import _compare, _regressions, baseline

    rng = random.Random(5)

    def q(fid: str, ms: float, calls: int = 200) -> dict:
        samples = [ms * (0.9 + 0.2 * rng.random()) for _ in range(calls)]
        return {"fingerprint": fid, "query": fid, "calls": calls, "total_ms": sum(samples),
                "mean_ms": sum(samples) / calls, "p95_ms": sorted(samples)[int(0.95 * calls) - 1],
                "samples": samples, "first_seen": ""}

    def rep(day: str, *queries: dict) -> dict:
        return {"day": day, "queries": list(queries), "all_fingerprints": [x["fingerprint"] for x in queries]}

    earlier = [rep("2026-11-17", q("creep", 2.0), q("weekly", 1.0)), rep("2026-11-18", q("creep", 2.2))]
    previous = rep("2026-11-19", q("creep", 3.0))
    today = rep("2026-11-20", q("creep", 4.0), q("weekly", 1.0), q("fresh", 1.0))
    new, gone, regressed = _compare(today, previous, 1.5, earlier)
    assert new == ["fresh"] and gone == [] and regressed == []  # 4.0 vs 3.0: within 1.5x of yesterday
    pooled = baseline([*earlier, previous])
    assert pooled["creep"]["calls"] == 600 and 2.3 < pooled["creep"]["mean_ms"] < 2.5
    slower = _regressions({x["fingerprint"]: x for x in today["queries"]}, pooled, 1.5)
    assert [r["fingerprint"] for r in slower] == ["creep"] and slower[0]["p_value"] < 0.01
