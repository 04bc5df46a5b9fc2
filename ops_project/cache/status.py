"""What the availability cache holds now: key count (SCAN, never KEYS), expiry per minute, hit ratio."""

from __future__ import annotations

import time

from ops_project.cache.keys import EXPIRY_ALARM_MIN_KEYS, EXPIRY_ALARM_SHARE, expiry_histogram
from ops_project.cache.redis_client import CacheError

BATCH = 1000


def status(client, prefix: str) -> dict:
    import redis

    expiring: dict[int, int] = {}
    keys = persistent = 0
    now = time.time()
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}avail:*", count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                persistent += _ttls(client, batch, now, expiring)
                keys += len(batch)
                batch = []
        persistent += _ttls(client, batch, now, expiring)
        keys += len(batch)
        stats = client.info("stats")
        memory = client.info("memory")
    except redis.RedisError as exc:
        raise CacheError(f"reading the cache's state from Redis: {exc}") from None
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    histogram = expiry_histogram(expiring)
    peak = max(histogram.values(), default=0)
    return {"keys": keys, "without_ttl": persistent, "expiry_per_minute": histogram,
            "expiry_alarm": (f"{peak} of {keys} keys expire in the same minute" if keys >= EXPIRY_ALARM_MIN_KEYS
                             and peak / keys > EXPIRY_ALARM_SHARE else None),
            "keyspace_hits": hits, "keyspace_misses": misses,
            "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "evicted_keys": int(stats.get("evicted_keys", 0)), "used_memory": int(memory.get("used_memory", 0)),
            "maxmemory": int(memory.get("maxmemory", 0))}


def _ttls(client, keys: list, now: float, expiring: dict[int, int]) -> int:
    """Add the keys' expiry minutes to ``expiring``; how many have no TTL at all."""
    if not keys:
        return 0
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
    persistent = 0
    for ms in pipe.execute():
        if ms == -1:
            persistent += 1
        elif ms >= 0:
            minute = int((now + ms / 1000) // 60)
            expiring[minute] = expiring.get(minute, 0) + 1
    return persistent
