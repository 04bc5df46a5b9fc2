"""The DESIGN key scheme and value encoding, and TTLs spread so that keys do not expire together."""

from __future__ import annotations

import json
import random
from datetime import date


def availability_key(prefix: str, slug: str, service_id: int, day: date | str) -> str:
    day = day.isoformat() if isinstance(day, date) else day
    return f"{prefix}avail:{slug}:{service_id}:{day}"


def encode(body: dict) -> bytes:
    """The value: the API's JSON body, byte for byte as Starlette's JSONResponse renders it."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


class Ttls:
    """TTLs drawn uniformly from [ttl × (1 − jitter), ttl] (whole seconds)."""

    def __init__(self, ttl: int, jitter: float, seed: int | None = None):
        self.low, self.high = max(1, int(ttl * (1 - jitter))), ttl
        self._rng = random.Random(seed)

    def __call__(self) -> int:
        return self._rng.randint(self.low, self.high)


def expiry_histogram(minutes: dict[int, int]) -> dict[str, int]:
    """Keys expiring per minute, labelled ``YYYY-MM-DDTHH:MM`` (UTC), from counts per unix minute."""
    from datetime import UTC, datetime

    return {datetime.fromtimestamp(m * 60, UTC).strftime("%Y-%m-%dT%H:%M"): n for m, n in sorted(minutes.items())}


EXPIRY_ALARM_SHARE = 0.05  # more warmed keys than this expiring in one minute: a stampede waiting to happen


def expiry_alarm(histogram: dict[str, int], ttl: int, jitter: float) -> str | None:
    total = sum(histogram.values())
    if not total:
        return None
    minute, peak = max(histogram.items(), key=lambda kv: kv[1])
    if peak / total <= EXPIRY_ALARM_SHARE:
        return None
    spread = int(ttl * jitter)
    return (f"{peak} of {total} warmed keys ({peak / total:.0%}) expire in the minute {minute} UTC: their misses "
            f"will reach the database together. TTLs spread over {spread} s; spreading them over at least 20 "
            f"minutes (ttl_jitter ≥ {min(0.99, 1200 / ttl):.2f} for ttl_seconds {ttl}) keeps each minute under "
            f"{EXPIRY_ALARM_SHARE:.0%}")
