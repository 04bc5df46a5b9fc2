"""Content checksums depend on the rows, not on their physical order or layout."""

from __future__ import annotations

import random
import sqlite3

from ops_project.backups.engines.sqlite import stats_of_file


def make(path, rows, *, shuffle: bool, vacuum: bool = False) -> None:
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, price REAL, data BLOB);"
                      "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;")
    order = list(rows)
    if shuffle:
        random.Random(3).shuffle(order)
    con.executemany("INSERT INTO t VALUES (?,?,?,?)", order)
    con.executemany("INSERT INTO kv VALUES (?,?)", [(f"k{r[0]}", r[1]) for r in order])
    con.commit()
    if vacuum:
        con.execute("VACUUM")
    con.close()


def test_same_rows_any_insert_order_same_checksum(tmp_path):
    rows = [(i, f"name {i} ✓", i * 1.5, bytes([i % 256]) * 10) for i in range(1, 3000)]
    make(tmp_path / "a.db", rows, shuffle=False)
    make(tmp_path / "b.db", rows, shuffle=True, vacuum=True)
    a, b = stats_of_file(tmp_path / "a.db"), stats_of_file(tmp_path / "b.db")
    assert a.tables == b.tables and a.tables["t"].rows == 2999 and a.tables["kv"].rows == 2999

    changed = list(rows)
    changed[1234] = (1235, "name 1235 ✓", 1235 * 1.5 + 0.01, changed[1234][3])
    make(tmp_path / "c.db", changed, shuffle=False)
    c = stats_of_file(tmp_path / "c.db")
    assert c.tables["t"].rows == a.tables["t"].rows and c.tables["t"].checksum != a.tables["t"].checksum
    assert c.tables["kv"] == a.tables["kv"]
