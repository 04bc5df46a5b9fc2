"""The demo booking database: realistic shape, deterministic, the size asked for."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from ops_project.backups.engines.sqlite import stats_of_file
from ops_project.demo.database import generate


def test_deterministic_for_a_seed(tmp_path):
    a = stats_of_file(generate(tmp_path / "a.db", 2, seed=1))
    b = stats_of_file(generate(tmp_path / "b.db", 2, seed=1))
    c = stats_of_file(generate(tmp_path / "c.db", 2, seed=2))
    assert a == b
    assert a.tables["appointments"].checksum != c.tables["appointments"].checksum


def test_shape_and_integrity(tmp_path):
    path = generate(tmp_path / "d.db", 4, seed=3)
    size_mb = path.stat().st_size / 2**20
    assert 3 <= size_mb <= 5.5, size_mb
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys=ON")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tenants", "customers", "staff", "services", "appointments", "payments", "audit_log"} <= tables
    statuses = {r[0] for r in con.execute("SELECT DISTINCT status FROM appointments")}
    assert {"booked", "confirmed", "completed", "cancelled", "no_show"} == statuses
    # No staff member is double-booked.
    overlaps = con.execute("""
        SELECT count(*) FROM appointments a JOIN appointments b
          ON a.staff_id = b.staff_id AND a.id < b.id AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at
    """).fetchone()[0]
    assert overlaps == 0
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE type='index' AND sql IS NOT NULL").fetchone()[0] >= 6


def test_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ops_project", "demo-db", "--path", str(tmp_path / "x.db"),
                          "--size-mb", "2"], check=True, capture_output=True, text=True).stdout
    assert "x.db" in out and (tmp_path / "x.db").exists()
