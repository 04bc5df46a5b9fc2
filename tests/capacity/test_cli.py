"""``python -m ops_project capacity …`` as a user runs it: the forecast contract (README, "The CLI"),
bad input with a clear message and no traceback, a report that names what it could not measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tests.conftest import local_region


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops_project", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_forecast_reads_a_csv_and_writes_the_contract_json(tmp_path):
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = ["timestamp,value"] + [f"{(start + timedelta(hours=h)).isoformat()},{1000 + 10 * h}" for h in range(96)]
    csv = tmp_path / "series.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "f.json"
    done = cli("capacity", "forecast", "--csv", str(csv), "--limit", "5000", "--json", str(out))
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert {"points", "span_days", "slope_per_day", "r2", "days_to_limit", "limit_at", "insufficient_data",
            "level_shift_at"} <= set(doc)
    # 240 a day from 1950 at the last point: 5000 is (5000 - 1950) / 240 = 12.7 days away
    assert doc["points"] == 96 and abs(doc["slope_per_day"] - 240) < 1e-6
    assert abs(doc["days_to_limit"] - (5000 - 1950) / 240) < 0.01 and not doc["insufficient_data"]
    assert "days" in done.stdout
    short = tmp_path / "short.csv"
    short.write_text("\n".join(rows[:10]) + "\n")
    doc = json.loads(cli("capacity", "forecast", "--csv", str(short), "--limit", "10GB", "--json", "-").stdout)
    assert doc["insufficient_data"] and doc["days_to_limit"] is None and doc["limit"] == 1e10


def test_bad_input_is_a_clear_error_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\n2026-11-01T00:00:00Z,12\nyesterday,13\n")
    done = cli("capacity", "forecast", "--csv", str(bad), "--limit", "100")
    assert done.returncode == 2 and "bad.csv, line 3" in done.stderr and "Traceback" not in done.stderr
    done = cli("capacity", "forecast", "--csv", str(tmp_path / "none.csv"), "--limit", "100")
    assert done.returncode == 2 and "none.csv" in done.stderr and "Traceback" not in done.stderr
    done = cli("capacity", "forecast", "--csv", str(bad), "--limit", "lots")
    assert done.returncode == 2 and "'lots' is not a number or a size" in done.stderr
    done = cli("capacity", "forecast", "--csv", str(bad), "--limit", "-5")
    assert done.returncode == 2 and "a limit must be a positive, finite number" in done.stderr
    nan = tmp_path / "nan.csv"
    nan.write_text("2026-11-01T00:00:00Z,12\n2026-11-01T01:00:00Z,nan\n")
    done = cli("capacity", "forecast", "--csv", str(nan), "--limit", "100")
    assert done.returncode == 2 and "nan.csv, line 2: 'nan' is not a finite number" in done.stderr


def test_report_names_what_it_could_not_measure_and_fails_only_when_nothing_was(tmp_path, demo_db, write_config):
    config = write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)},
         {"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE_URL"}],
        [local_region(tmp_path, "a"), {"name": "b", "kind": "local", "path": str(tmp_path / "unmounted")}])
    env = {"OPS_T_CORE_URL": "postgresql://ops:hunter2-secret@127.0.0.1:1/core"}
    out = tmp_path / "report.json"
    done = cli("--config", str(config), "capacity", "report", "--json", str(out), env=env)
    assert done.returncode == 0, done.stderr
    rep = json.loads(out.read_text())
    assert {m["what"] for m in rep["missing"]} == {"database core", "region b"}
    assert "booking database file" in done.stdout and "Not measured" in done.stdout
    assert "hunter2-secret" not in done.stdout + done.stderr + out.read_text()
    assert (tmp_path / "regions" / "a" / "reports" / "capacity" / rep["week"] / "report.json").exists()
    # nothing at all: the primary region gone and the database file missing
    gone = write_config([{"name": "booking", "engine": "sqlite", "path": str(tmp_path / "no.db")}],
                        [{"name": "x", "kind": "local", "path": str(tmp_path / "nowhere")}])
    done = cli("--config", str(gone), "capacity", "report")
    assert done.returncode == 1 and "nothing could be measured" in done.stderr and "Traceback" not in done.stderr
