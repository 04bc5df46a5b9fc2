"""The embedded default's slow-query report: a day of demo API traffic (``demo-traffic``, the API's own
statements in its D1-shaped query log, where the shipped ``ops.yaml`` reads it), then ``slow_query_report``
for that day through Dagster; the traffic never writes to the database."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from dagster import DagsterInstance, MultiPartitionKey

from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from ops_project.queries.daily import report_key
from tests.conftest import local_region

SHIPPED = Path(__file__).resolve().parents[2] / "ops.yaml"


def test_a_day_of_demo_traffic_gives_the_days_report(tmp_path, demo_db, write_config):
    shipped = yaml.safe_load(SHIPPED.read_text())["queries"]
    (source,) = shipped["sources"]
    assert source["database"] == "booking" and source["kind"] == "sqlite_jsonl"
    # the shipped glob, moved beside this test's demo database as .ops/demo/ holds the shipped one
    source["paths"] = [str(demo_db.parent / Path(p).name) for p in source["paths"]]
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "af-south-1")], queries=shipped)
    cfg = load_config(path)
    day = (datetime.now(cfg.tz) - timedelta(days=3)).date().isoformat()
    before = hashlib.sha256(demo_db.read_bytes()).hexdigest()
    done = subprocess.run([sys.executable, "-m", "ops_project", "demo-traffic", "--config", str(path), "--day", day,
                           "--requests", "120"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "120 requests" in done.stdout and "0 errors" in done.stdout
    assert hashlib.sha256(demo_db.read_bytes()).hexdigest() == before  # read traffic: the data is untouched
    logged = [json.loads(line) for f in demo_db.parent.glob("queries-*.jsonl") for line in f.read_text().splitlines()]
    assert len(logged) > 120 and all("?" in e["sql"] or "WHERE" not in e["sql"] for e in logged)  # no values
    with DagsterInstance.ephemeral() as instance:
        result = build_definitions(cfg).resolve_job_def("slow_query_job").execute_in_process(
            partition_key=MultiPartitionKey({"database": "booking", "day": day}), instance=instance)
    meta = result.asset_materializations_for_node("slow_query_report")[0].metadata
    assert meta["statements"].value == len(logged) and meta["parsed_share"].value == 1.0
    rep = json.loads(Clients(cfg).store(cfg.primary).get_bytes(report_key("booking", day)))
    top = rep["queries"][0]
    assert "FROM appointments WHERE staff_id IN (?)" in top["query"]  # availability: the heaviest statement
    assert sum(q["calls"] for q in rep["queries"]) == len(logged)
