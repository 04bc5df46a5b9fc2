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
    assert cli("--database", "booking", "--day", "yesterday").returncode == 2
    empty = cli("--database", "booking", "--day", DAY3)
    assert empty.returncode == 1 and "Traceback" not in empty.stderr and f"on {DAY3}" in empty.stderr
    assert not store.exists(report_key("booking", DAY3))  # nothing half-written or wrongly marked good
