"""SQLite / D1 query logs from the demo API's own statements (its ``--query-log``, D1's shape): fingerprints
over the placeholders, and a full-scan hint from ``EXPLAIN QUERY PLAN`` where a filter lost its index."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta

import httpx
import pytest

from ops_project.queries.analyze import NoStatementsError, analyze
from tests.servers import free_ports

DAYS = 3


@pytest.fixture
def logged_api(tmp_path, demo_db):
    log = tmp_path / "queries.jsonl"
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-m", "ops_project", "demo-api", "--port", str(port), "--version",
                             "v1.0.0", "--db", str(demo_db), "--query-log", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/version", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"demo API did not start: {proc.stderr.read1(4000) if proc.poll() else ''}")
            time.sleep(0.1)
    yield url, log
    proc.terminate()
    proc.wait(timeout=10)


def test_demo_api_queries_fingerprinted_with_a_full_scan_hint(logged_api, demo_db):
    with sqlite3.connect(demo_db) as con:  # production lost an index: the customer lookup now scans
        con.execute("DROP INDEX customers_tenant")
    url, log = logged_api
    base = f"{url}/tenants/tenant-0001"
    listing = httpx.get(f"{base}/services", timeout=10).json()
    service, staff = listing["services"][0]["id"], listing["staff"][0]["id"]
    first = date.today() + timedelta(days=500)
    for n in range(DAYS):
        day = first + timedelta(days=n)
        assert httpx.get(f"{base}/availability", params={"date": day.isoformat(), "service_id": service},
                         timeout=10).status_code == 200
    slots = httpx.get(f"{base}/availability", params={"date": first.isoformat(), "service_id": service,
                                                      "staff_id": staff}, timeout=10).json()["slots"]
    chosen = []
    for slot in slots:  # three that do not overlap
        if not chosen or slot["starts_at"] >= chosen[-1]["ends_at"]:
            chosen.append(slot)
    for i, slot in enumerate(chosen[:3]):
        made = httpx.post(f"{base}/bookings", timeout=10, json={
            "service_id": service, "staff_id": staff, "starts_at": slot["starts_at"],
            "customer_email": f"private-{i}@customer.example"})
        assert made.status_code == 201, made.text
    lines = log.read_text().splitlines()
    assert lines and {"ts", "sql", "duration_ms", "rows_read", "rows_written"} <= set(json.loads(lines[0]))
    assert "private-" not in log.read_text()  # placeholders, never the values

    report = analyze([log], "sqlite-jsonl", explain_db=demo_db, top=100)
    detected = analyze([log], explain_db=demo_db, top=100)  # auto: D1's keys say what it is
    assert [q["fingerprint"] for q in detected["queries"]] == [q["fingerprint"] for q in report["queries"]]
    assert detected["hints"] == report["hints"]
    assert report["statements"] == len(lines)
    by_query = {q["query"]: q for q in report["queries"]}
    tenant_lookup = next(q for text, q in by_query.items() if "FROM tenants" in text and "slug" in text)
    assert tenant_lookup["calls"] == 1 + DAYS + 1 + 3  # services, each availability, bookings: one shape
    inserts = [q for text, q in by_query.items() if text.startswith("INSERT INTO customers")]
    assert len(inserts) == 1 and inserts[0]["calls"] == 3 and inserts[0]["rows"] == 3
    customer = next(q for text, q in by_query.items() if "FROM customers" in text and "email" in text)
    hints = {h["fingerprint"]: h for h in report["hints"]}
    assert "full scan of customers" in hints[customer["fingerprint"]]["hint"]
    assert hints[customer["fingerprint"]]["plan"].startswith("SCAN customers")
    assert tenant_lookup["fingerprint"] not in hints  # found through the slug's unique index
    assert "private-" not in json.dumps(report)


def test_an_empty_or_foreign_jsonl_log_fails(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(NoStatementsError, match=str(empty)):
        analyze([empty], "sqlite-jsonl")
    foreign = tmp_path / "access.jsonl"
    foreign.write_text("\n".join(json.dumps({"path": "/x", "status": 200}) for _ in range(10)) + "\n")
    with pytest.raises(NoStatementsError, match="first line that matched nothing"):
        analyze([foreign], "sqlite-jsonl")
