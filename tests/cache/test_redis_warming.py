"""Warming Redis with availability, against a redis-server of the test's own: exactly the expected keys, each
value the API's own answer, TTLs spread; the demo API reads through the cache (hits after warming) and a
booking drops exactly the keys of the day it changes; Redis trouble is a clear error, never a success."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import date, timedelta

import httpx
import pytest

from ops_project.cache.config import CacheConfig
from ops_project.cache.keys import availability_key
from ops_project.cache.readthrough import ReadThrough
from ops_project.cache.warm_redis import warm
from ops_project.demo.api import create_app
from tests.conftest import local_region
from tests.servers import redis_server

START = date(2026, 12, 7)
DAYS = 5


@pytest.fixture(scope="module")
def redis_srv():
    with redis_server() as server:
        yield server


def call(app, method: str, url: str, body: dict | None = None) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            return await client.request(method, url, json=body)

    return asyncio.run(go())


def catalogue(db) -> list[tuple[str, int]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT t.slug, s.id FROM services s JOIN tenants t ON t.id = s.tenant_id").fetchall()
    finally:
        con.close()


def settings(**kw) -> CacheConfig:
    return CacheConfig(key_prefix="t:", availability_days=DAYS, ttl_seconds=3600, ttl_jitter=0.4, batch=200, **kw)


def test_warming_writes_every_key_with_the_apis_answer_and_spread_ttls(redis_srv, demo_db):
    client = redis_srv.client()
    client.flushdb()  # the test's own server
    report = warm(demo_db, client, settings(), START, seed=3)
    pairs = catalogue(demo_db)
    expected = {availability_key("t:", slug, sid, START + timedelta(days=i)) for slug, sid in pairs
                for i in range(DAYS)}
    assert report["requested"] == report["warmed"] == len(expected) and report["failed"] == 0
    assert {k.decode() for k in client.scan_iter(match="t:avail:*", count=1000)} == expected
    api = create_app(demo_db, "v-test")  # no cache: the database's answer
    for slug, sid in pairs[:: max(1, len(pairs) // 12)]:
        for day in (START, START + timedelta(days=DAYS - 1)):
            answer = call(api, "GET", f"/tenants/{slug}/availability?date={day}&service_id={sid}")
            assert answer.status_code == 200
            assert json.loads(client.get(availability_key("t:", slug, sid, day))) == answer.json()
    ttls = [client.ttl(k) for k in list(expected)[:300]]
    assert all(3600 * 0.6 - 2 <= t <= 3600 for t in ttls)
    assert max(ttls) - min(ttls) > 0.3 * 3600  # spread over the jitter's range, not one expiry for all
    assert sum(report["expiry_per_minute"].values()) == len(expected)
    assert report["info_delta"]["evicted_keys"] == 0 and "evictions" not in report


def test_the_api_reads_through_and_a_booking_drops_that_days_keys(redis_srv, demo_db):
    client = redis_srv.client()
    client.flushdb()
    warm(demo_db, client, settings(), START, seed=4)
    api = create_app(demo_db, "v-test", cache=ReadThrough(client, "t:", 3600, 0.4))
    slug, sid = catalogue(demo_db)[0]
    url = f"/tenants/{slug}/availability?date={START}&service_id={sid}"
    hits = client.info("stats")["keyspace_hits"]
    first = call(api, "GET", url)
    assert first.headers["x-cache"] == "HIT" and client.info("stats")["keyspace_hits"] == hits + 1
    slot = first.json()["slots"][0]
    con = sqlite3.connect(demo_db)
    (tid,) = con.execute("SELECT id FROM tenants WHERE slug = ?", (slug,)).fetchone()
    services = [r[0] for r in con.execute("SELECT id FROM services WHERE tenant_id = ?", (tid,))]
    other = con.execute("SELECT t.slug, s.id FROM services s JOIN tenants t ON t.id = s.tenant_id "
                        "WHERE t.id <> ? LIMIT 1", (tid,)).fetchone()
    con.close()
    booked = call(api, "POST", f"/tenants/{slug}/bookings",
                  {"service_id": sid, "staff_id": slot["staff_id"], "customer_email": "new@example.com",
                   "starts_at": slot["starts_at"]})
    assert booked.status_code == 201, booked.text
    for s in services:  # every service of that tenant on that day: the staff member's time is shared
        assert not client.exists(availability_key("t:", slug, s, START))
        assert client.exists(availability_key("t:", slug, s, START + timedelta(days=1)))  # other days stay
    assert client.exists(availability_key("t:", other[0], other[1], START))  # other tenants stay
    again = call(api, "GET", url)
    assert again.headers["x-cache"] == "MISS" and slot not in again.json()["slots"]
    assert call(api, "GET", url).headers["x-cache"] == "HIT"  # filled on the miss
    assert client.ttl(availability_key("t:", slug, sid, START)) > 0


def _cli(config, env, *args):
    return subprocess.run([sys.executable, "-m", "ops_project", "--config", str(config), "cache", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def _config(tmp_path, demo_db, write_config):
    return write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "af-south-1")],
                        cache={"redis_url_env": "OPS_TEST_REDIS_URL", "key_prefix": "cli:", "availability_days": 3,
                               "ttl_seconds": 7200, "ttl_jitter": 0.3})


def test_the_cli_warms_and_reports_and_says_what_is_wrong(redis_srv, demo_db, tmp_path, write_config):
    import os

    config = _config(tmp_path, demo_db, write_config)
    env = {**os.environ, "OPS_TEST_REDIS_URL": redis_srv.url}
    redis_srv.client().flushdb()
    done = _cli(config, env, "warm", "--start-date", "2026-12-10", "--json", str(tmp_path / "warm.json"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "warm.json").read_text())
    expected = len(catalogue(demo_db)) * 3
    assert report["redis"]["requested"] == report["redis"]["warmed"] == expected
    assert "base_url is not set" in report["http"]["not_run"]  # no CDN configured: said, not hidden
    status = _cli(config, env, "status", "--json", "-")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["keys"] == expected
    missing = _cli(config, {k: v for k, v in env.items() if k != "OPS_TEST_REDIS_URL"}, "warm")
    assert missing.returncode == 1 and "OPS_TEST_REDIS_URL" in missing.stderr and "Traceback" not in missing.stderr
    closed = _cli(config, {**env, "OPS_TEST_REDIS_URL": "redis://127.0.0.1:1/0"}, "warm")
    assert closed.returncode == 1 and "Redis at 127.0.0.1:1 is unreachable" in closed.stderr
    assert _cli(config, env, "warm", "--start-date", "12/10/2026").returncode == 2


def test_a_wrong_password_is_named_and_never_shown(demo_db, tmp_path, write_config):
    import os

    config = _config(tmp_path, demo_db, write_config)
    with redis_server(password="s3cret-right") as srv:
        wrong = f"redis://:s3cret-wrong@127.0.0.1:{srv.port}/0"
        done = _cli(config, {**os.environ, "OPS_TEST_REDIS_URL": wrong}, "warm")
        assert done.returncode == 1 and "refused the credentials" in done.stderr
        assert "s3cret" not in done.stderr + done.stdout
        none = _cli(config, {**os.environ, "OPS_TEST_REDIS_URL": f"redis://127.0.0.1:{srv.port}/0"}, "warm")
        assert none.returncode == 1 and "password" in none.stderr


def test_a_full_redis_is_reported_not_hidden(demo_db):
    # an empty redis-server already uses ~0.95 MB and the 480 keys take ~11 MB: 4 MB holds about a quarter of
    # them, so Redis must evict (1 MB left no room at all, and whether anything was counted as evicted varied)
    with redis_server(maxmemory="4mb") as srv:
        client = srv.client()
        report = warm(demo_db, client, CacheConfig(key_prefix="m:", availability_days=30, batch=500), START)
        assert report["requested"] > 0
        # allkeys-lru: Redis makes room by evicting, and the report says so; the keys it threw away are gone
        assert report["info_delta"]["evicted_keys"] > 0 and "evicted" in report["evictions"]
        kept = len(list(client.scan_iter(match="m:avail:*")))
        assert 0 < kept < report["requested"]


def test_ttls_fill_their_range_evenly_and_a_narrow_spread_alarms():
    from ops_project.cache.keys import Ttls, expiry_alarm, expiry_histogram

    def minutes(jitter: float, n: int = 2000) -> dict[int, int]:
        ttls, out = Ttls(3600, jitter, seed=9), {}
        for _ in range(n):
            t = ttls()
            assert int(3600 * (1 - jitter)) <= t <= 3600
            out[(1_800_000_000 + t) // 60] = out.get((1_800_000_000 + t) // 60, 0) + 1
        return out

    wide, narrow = minutes(0.42), minutes(0.1)
    assert max(wide.values()) / 2000 < 0.05 and len(wide) >= 25  # 25 minutes, none over 5 %
    assert expiry_alarm(expiry_histogram(wide), 3600, 0.42) is None
    alarm = expiry_alarm(expiry_histogram(narrow), 3600, 0.1)  # 6 minutes: a sixth of the keys each
    assert alarm is not None and "ttl_jitter ≥ 0.42" in alarm
    assert expiry_alarm(expiry_histogram(minutes(0.1, 50)), 3600, 0.1) is None  # 50 keys: no stampede
