"""Live measurements against real servers: the machine's PostgreSQL (a throw-away database), a redis-server of
the test's own, a SQLite file, local regions; one source down is named and the rest still measured."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import psycopg

from ops_project.capacity.measure import measure
from ops_project.clients import Clients
from ops_project.config import load_config
from tests.conftest import local_region
from tests.servers import redis_server


def by_id(doc: dict) -> dict[str, dict]:
    return {s["resource"]: s for s in doc["samples"]}


def test_postgres_sizes_connections_xid_age_and_an_int4_sequence_near_its_end(scratch_pg, tmp_path, write_config,
                                                                              monkeypatch):
    url = scratch_pg()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE TABLE bookings (id serial PRIMARY KEY, note text)")  # serial: an int4 sequence
        con.execute("CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz)")  # bigint: not reported
        con.execute("INSERT INTO bookings (note) SELECT repeat('x', 200) FROM generate_series(1, 5000)")
        con.execute("SELECT setval('bookings_id_seq', 1610612736)")  # 75 % of 2^31 - 1
        max_conn = int(con.execute("SHOW max_connections").fetchone()[0])
        reserved = int(con.execute("SHOW superuser_reserved_connections").fetchone()[0])
        freeze = int(con.execute("SHOW autovacuum_freeze_max_age").fetchone()[0])
        size = con.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    monkeypatch.setenv("OPS_T_PG", url)
    cfg = load_config(write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_PG"}],
                                   [local_region(tmp_path, "a")], capacity={"limits": {"core": {"bytes": "2GB"}}}))
    clients = Clients(cfg)
    doc = measure(cfg, store_for=clients.store, url_for=clients.database_url, redis_for=None)
    got = by_id(doc)
    assert doc["missing"] == []
    assert got["core/bytes"]["limit"] == 2e9 and abs(got["core/bytes"]["value"] - size) < 5e6
    assert "public.bookings" in got["core/bytes"]["detail"]["relations"]
    assert got["core/connections"]["limit"] == max_conn - reserved and 1 <= got["core/connections"]["value"] < 200
    assert got["core/xid_age"]["limit"] == freeze and got["core/xid_age"]["value"] > 0
    seq = got["core/seq:public.bookings_id_seq"]
    assert abs(seq["value"] - 0.75) < 1e-4 and seq["limit"] == 1.0
    assert "core/seq:public.events_id_seq" not in got  # a bigint sequence has room for centuries


def test_sqlite_file_free_pages_regions_and_redis(tmp_path, demo_db, write_config):
    con = sqlite3.connect(demo_db)
    con.execute("CREATE TABLE scratch AS SELECT * FROM appointments")
    con.commit()
    con.execute("DROP TABLE scratch")  # its pages go to the free list
    con.commit()
    free = con.execute("PRAGMA freelist_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    (tmp_path / "regions" / "a").mkdir(parents=True)
    (tmp_path / "regions" / "a" / "blob").write_bytes(b"x" * 12345)
    with redis_server(maxmemory="8mb") as srv:
        srv.client().set("k", "v" * 1000)
        cfg = load_config(write_config(
            [{"name": "booking", "engine": "sqlite", "path": str(demo_db)}], [local_region(tmp_path, "a")],
            capacity={"regions": {"a": {"price_gb_month": 0.02, "quota_bytes": "1MB"}}}))
        clients = Clients(cfg)
        doc = measure(cfg, store_for=clients.store, url_for=clients.database_url, redis_for=srv.client,
                      now=datetime.now(UTC))
    got = by_id(doc)
    db = got["booking/bytes"]
    assert db["value"] == demo_db.stat().st_size and db["detail"]["free_bytes"] == free > 0
    assert db["limit_source"].startswith("the volume holding")  # no configured limit: the volume's size
    assert "appointments" in db["detail"]["tables"]  # dbstat
    region = got["region:a/bytes"]
    assert region["value"] == 12345 and region["limit"] == 1e6 and region["detail"]["objects"] == 1
    assert got["redis/used_memory"]["limit"] == 8 * 1024 * 1024 and got["redis/keys"]["value"] == 1


def test_what_cannot_be_measured_is_named_and_the_rest_still_comes_out(tmp_path, demo_db, write_config,
                                                                       monkeypatch):
    monkeypatch.setenv("OPS_T_PG", "postgresql://nobody:s3cr3t-pass@127.0.0.1:1/none")
    cfg = load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)},
         {"name": "core", "engine": "postgres", "url_env": "OPS_T_PG"}],
        [local_region(tmp_path, "a"), {"name": "gone", "kind": "local", "path": str(tmp_path / "unmounted")}]))
    clients = Clients(cfg)
    doc = measure(cfg, store_for=clients.store, url_for=clients.database_url, redis_for=None)
    assert {s["resource"] for s in doc["samples"]} == {"booking/bytes", "region:a/bytes"}
    missing = {m["what"]: m["why"] for m in doc["missing"]}
    assert set(missing) == {"database core", "region gone"}
    assert "s3cr3t-pass" not in str(doc)  # the URL's password never lands in a measurement
