"""The capacity report: growth from real backup manifests in a local and a SeaweedFS region, costs from their
listings; the asset through Dagster with its markdown and chart, a resource near its limit failing the ERROR
check and alerting a real HTTP receiver; a later report scoring an earlier forecast."""

from __future__ import annotations

import base64
import io
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, build_sensor_context
from PIL import Image

from assets.capacity import capacity_partitions
from ops_project.backups.replicate import replicate
from ops_project.backups.take import take_backup
from ops_project.capacity.history import store_measurement
from ops_project.capacity.report import build_report, store_report
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from resources import NotifierResource
from tests.conftest import local_region, s3_region, unique

GIB = 2**30


def grow(db, rows: int) -> None:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE IF NOT EXISTS growth (id INTEGER PRIMARY KEY, pad TEXT)")
    con.executemany("INSERT INTO growth (pad) VALUES (?)", [("x" * 500,)] * rows)
    con.commit()
    con.close()


def test_backup_manifests_give_the_growth_series_and_the_cost_of_each_region(tmp_path, demo_db, write_config,
                                                                            s3_env):
    bucket = unique("cap")
    s3_env[0].make_bucket(bucket)
    cfg = load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
        [local_region(tmp_path, "af-south-1"), s3_region("eu-west-1", bucket, "OPS_T_ENDPOINT_A")],
        capacity={"regions": {"af-south-1": {"price_gb_month": 0.0274},
                              "eu-west-1": {"price_gb_month": 0.023, "price_per_1000_put": 0.005}}}))
    clients = Clients(cfg)
    primary, dr = clients.store("af-south-1"), clients.store("eu-west-1")
    sizes = []
    for _ in range(3):
        grow(demo_db, 2000)
        manifest = take_backup(cfg.databases[0], primary, cfg.backup)
        replicate(primary, dr, "booking", manifest.backup_id)
        sizes.append(manifest.source_size_bytes)
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    from ops_project.capacity.run import Sources, sample

    now = datetime.now(UTC)
    measured, _ = sample(cfg, primary, Sources(clients.store, clients.database_url, None), now=now)
    rep, _images = build_report(cfg, primary, as_of=now, week="2026-11-30", measured=measured)
    rows = {r["resource"]: r for r in rep["resources"]}
    db = rows["booking/bytes"]
    assert db["sources"] == ["manifests", "measured"] and db["forecast"]["points"] == 4  # 3 backups + now
    assert db["forecast"]["insufficient_data"]  # seconds of history: no number, and the report says why
    assert rows["booking/rows:growth"]["forecast"]["last_value"] == 6000
    # cost: what each region really stores (its own listing, read here independently), at its price
    for name, store, price in (("af-south-1", primary, 0.0274), ("eu-west-1", dr, 0.023)):
        # (measured before the measurement itself was stored under reports/capacity/)
        stored = sum(o.size for o in store.list("") if not o.key.startswith("reports/capacity/"))
        (cost,) = [c for c in rep["costs"] if c["region"] == name]
        assert cost["bytes"] == stored > 0
        assert abs(cost["monthly_storage"] - stored / GIB * price) < 1e-6
    (dr_cost,) = [c for c in rep["costs"] if c["region"] == "eu-west-1"]
    assert dr_cost["puts_30d"] == dr_cost["objects"] > 0  # every object was written this month
    assert abs(dr_cost["monthly_requests"] - dr_cost["puts_30d"] / 1000 * 0.005) < 1e-9


def hourly_history(store, resource: dict, values, end: datetime) -> None:
    """Measurements as the hourly sampler would have stored them: one file per hour ending at ``end``."""
    for i, value in enumerate(values):
        at = end - timedelta(hours=len(values) - i)
        store_measurement(store, {"taken_at": at.isoformat(), "missing": [],
                                  "samples": [{**resource, "value": float(value)}]})


def test_the_asset_shows_its_chart_and_a_resource_near_its_limit_fails_the_check_and_alerts(
        tmp_path, demo_db, write_config, receiver, monkeypatch):
    base, received, _state = receiver
    hook = base + "/hooks/T000/B000/XXXX"
    monkeypatch.setenv("OPS_T_WEBHOOK", hook)
    size = demo_db.stat().st_size
    # three days of hourly sizes growing to today's real size: +1/6 of it a day. Limit: 80 % in ~10 days
    limit = int((size + 10 * size / 6) / 0.8)
    cfg = load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
        [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
        capacity={"limits": {"booking": {"bytes": limit}}, "alert_days": 30},
        alerts={"webhook_url_env": "OPS_T_WEBHOOK", "state_dir": str(tmp_path / "alert-state")}))
    primary = Clients(cfg).store("af-south-1")
    now = datetime.now(UTC)
    hours = 72
    hourly_history(primary, {"resource": "booking/bytes", "label": "booking database file",
                             "kind": "database_bytes", "unit": "bytes", "limit": None, "detail": {}},
                   [size / 2 + (size / 2) * i / hours for i in range(hours)], now)
    defs = build_definitions(cfg)
    instance = DagsterInstance.ephemeral()
    sensor = defs.get_repository_def().get_sensor_def("ops_check_failure_sensor")
    notifier = NotifierResource(config_path=str(cfg.source), webhook_url=hook)
    cursor = sensor(build_sensor_context(instance=instance, cursor=None, resources={"notifier": notifier})).cursor
    week = capacity_partitions(cfg).get_partition_keys(current_time=now)[-1]
    result = defs.resolve_job_def("capacity_report_job").execute_in_process(partition_key=week, instance=instance,
                                                                           raise_on_error=False)
    assert result.success  # the check fails, the run does not: the report itself is good
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "headroom" and not check.passed and check.severity.value == "ERROR"
    match = re.search(r"booking database file reaches 80 % of .* on (\d{4}-\d\d-\d\d) \((\d+) days\)",
                      check.description)
    assert match and 8 <= int(match.group(2)) <= 12, check.description
    assert "raise the volume" in check.description
    (mat,) = result.asset_materializations_for_node("capacity_report")
    md = mat.metadata["report"].value
    assert "| booking database file |" in md and "forecast error" in md
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", md).group(1))
    assert Image.open(io.BytesIO(png)).size[0] > 300  # a real chart, inline in the UI
    stored = json.loads((tmp_path / "regions" / "af-south-1" / "reports" / "capacity" / week / "report.json")
                        .read_text())
    (row,) = [r for r in stored["resources"] if r["resource"] == "booking/bytes"]
    assert row["chart"] and (tmp_path / "regions" / "af-south-1" / "reports" / "capacity" / week / row["chart"]) \
        .read_bytes() == png
    assert mat.metadata["alerting"].value == 1 and mat.metadata["charts"].value == 1
    # the check-failure sensor that watches every ERROR check posts it to the webhook
    sensor(build_sensor_context(instance=instance, cursor=cursor, resources={"notifier": notifier}))
    bodies = [body for path, body in received if path.startswith("/hooks/")]
    assert any("check headroom failed on capacity_report" in b["text"] and "booking database file" in b["text"]
               for b in bodies), bodies


def test_a_later_report_scores_the_forecast_of_a_week_before(tmp_path, write_config, demo_db):
    """A line growing 100 MB a day for ten days, then 200 MB a day: the forecast made on day 10 extrapolates
    the first line; the report a week later shows its error against what happened (oracle: both lines)."""
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "a")], capacity={"limits": {"booking": {"bytes": "50GB"}}}))
    store = Clients(cfg).store("a")
    start = datetime(2026, 11, 1, tzinfo=UTC)

    def truth(day: float) -> float:
        return 1e9 + 1e8 * day if day <= 10 else 1e9 + 1e8 * 10 + 2e8 * (day - 10)

    points = [start + timedelta(hours=h) for h in range(17 * 24 + 1)]
    for at in points:
        store_measurement(store, {"taken_at": at.isoformat(), "missing": [], "samples": [
            {"resource": "booking/bytes", "label": "booking database file", "kind": "database_bytes",
             "unit": "bytes", "value": truth((at - start).total_seconds() / 86400), "limit": None, "detail": {}}]})
    first_at = start + timedelta(days=10)
    first, images = build_report(cfg, store, as_of=first_at, week="2026-11-09", charts=False)
    store_report(store, first, images)
    later_at = start + timedelta(days=17)
    later, _ = build_report(cfg, store, as_of=later_at, week="2026-11-16", charts=False)
    (row,) = [r for r in later["resources"] if r["resource"] == "booking/bytes"]
    score = row["scores"]["1w"]
    after = [at for at in points if first_at < at <= later_at]

    def first_line(day: float) -> float:
        return 1e9 + 1e8 * day

    expected = 100 * sum(abs(truth(d) - first_line(d)) / truth(d)
                         for d in ((at - start).total_seconds() / 86400 for at in after)) / len(after)
    assert score["points"] == len(after) == 7 * 24 and score["made_at"] == first_at.isoformat()
    assert abs(score["mape"] - expected) < 0.05, (score, expected)
    assert "4w" not in row["scores"]  # no report four weeks before: nothing to score, nothing invented
    from ops_project.capacity.report import markdown

    assert f"1w {score['mape']:.1f} %" in markdown(later)
