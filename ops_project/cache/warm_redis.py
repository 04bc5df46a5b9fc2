"""Warm Redis with availability: every tenant × service × day of the coming ``availability_days``, computed
from a read-only connection to the booking database one tenant at a time (one query for all its days,
whatever its services and staff), written in batches of pipelined commands with TTLs spread by the jitter.

Memory is bounded by one tenant-day's answers plus one batch, whatever the number of keys. The report says
what was asked and what happened: requested, warmed, failed (with Redis's first error replies), the Redis
``INFO`` deltas over the warm-up (hits, misses, evictions, memory) and when the warmed keys will expire.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path

from ops_project.cache import availability as avail
from ops_project.cache.config import CacheConfig
from ops_project.cache.keys import Ttls, availability_key, encode, expiry_alarm, expiry_histogram
from ops_project.cache.redis_client import BulkWriter, CacheError

INFO_FIELDS = ("keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys", "used_memory")


def info(client) -> dict:
    """The INFO fields the report compares before and after, and maxmemory."""
    import redis

    try:
        stats, memory = client.info("stats"), client.info("memory")
    except redis.RedisError as exc:
        raise CacheError(f"Redis refused INFO: {exc}") from None
    out = {k: int(stats.get(k, memory.get(k, 0))) for k in INFO_FIELDS}
    out["maxmemory"] = int(memory.get("maxmemory", 0))
    out["maxmemory_policy"] = memory.get("maxmemory_policy")
    return out


def read_only(db_path: str | Path) -> sqlite3.Connection:
    path = Path(db_path)
    if not path.is_file():
        raise CacheError(f"the booking database {path} (cache.source) does not exist")
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10)


def warm(db_path: str | Path, client, settings: CacheConfig, start: date, *, seed: int | None = None) -> dict:
    """Write every availability key from ``start`` for ``settings.availability_days`` days; the report."""
    days = [start + timedelta(days=i) for i in range(settings.availability_days)]
    ttls = Ttls(settings.ttl_seconds, settings.ttl_jitter, seed)
    before = info(client)
    writer = BulkWriter(client, settings.batch)
    requested, expiring = 0, {}  # unix minute → keys expiring then: bounded by the TTL range, not the keys
    began = time.monotonic()
    con = read_only(db_path)
    try:
        tenants = avail.tenants(con)
        for tenant in tenants:  # one query per tenant for all the days
            for day, service_id, answer in avail.tenant_days(con, tenant, days):
                ttl = ttls()
                writer.set(availability_key(settings.key_prefix, tenant.slug, service_id, day), encode(answer), ttl)
                minute = int((time.time() + ttl) // 60)
                expiring[minute] = expiring.get(minute, 0) + 1
                requested += 1
        stats = writer.close()
    except sqlite3.Error as exc:
        raise CacheError(f"reading availability from {db_path}: {exc}") from None
    finally:
        con.close()
    seconds = time.monotonic() - began
    after = info(client)
    histogram = expiry_histogram(expiring if stats.written else {})
    deltas = {k: after[k] - before[k] for k in INFO_FIELDS}
    report = {
        "requested": requested, "warmed": stats.written, "skipped": 0, "failed": stats.failed,
        "errors": stats.errors, "seconds": round(seconds, 3),
        "keys_per_second": round(stats.written / seconds, 1) if seconds > 0 else None,
        "tenants": len(tenants), "days": [days[0].isoformat(), days[-1].isoformat()],
        "ttl_range": [ttls.low, ttls.high], "info_before": before, "info_after": after, "info_delta": deltas,
        "expiry_per_minute": histogram,
        "expiry_alarm": expiry_alarm(histogram, settings.ttl_seconds, settings.ttl_jitter),
    }
    if deltas["evicted_keys"] > 0:
        report["evictions"] = (f"Redis evicted {deltas['evicted_keys']} keys during the warm-up (maxmemory "
                               f"{after['maxmemory']} bytes, policy {after['maxmemory_policy']}): warmed keys may "
                               f"already be gone; raise maxmemory or warm fewer days")
    return report
