"""The booking API's side of the cache: look the availability key up first, fill it on a miss (same key, same
value, a jittered TTL), and drop a tenant's keys for a day when a booking or a cancellation changes it.

Redis trouble never fails a customer's request: the API answers from the database and counts the error
(``errors``), as a cache in front of a database should.
"""

from __future__ import annotations

import threading
from datetime import date

from ops_project.cache.keys import Ttls, availability_key


class ReadThrough:
    def __init__(self, client, prefix: str, ttl: int, jitter: float):
        self._client, self.prefix = client, prefix
        self._ttls, self._lock = Ttls(ttl, jitter), threading.Lock()
        self.errors = 0

    def get(self, slug: str, service_id: int, day: date) -> bytes | None:
        import redis

        try:
            return self._client.get(availability_key(self.prefix, slug, service_id, day))
        except redis.RedisError:
            self.errors += 1
            return None

    def fill(self, slug: str, service_id: int, day: date, value: bytes) -> None:
        import redis

        with self._lock:
            ttl = self._ttls()
        try:
            self._client.set(availability_key(self.prefix, slug, service_id, day), value, ex=ttl)
        except redis.RedisError:
            self.errors += 1

    def invalidate(self, slug: str, service_ids: list[int], days: list[date]) -> int:
        """Drop the keys of every service of the tenant on ``days``; how many there were."""
        import redis

        keys = [availability_key(self.prefix, slug, s, d) for s in service_ids for d in days]
        if not keys:
            return 0
        try:
            return int(self._client.delete(*keys))
        except redis.RedisError:
            self.errors += 1
            return 0
