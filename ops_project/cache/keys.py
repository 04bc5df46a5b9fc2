"""The key scheme and value encoding (README, "Warming the cache"), and TTLs spread so that keys do not
expire together."""

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
    """TTLs spread over [ttl × (1 − jitter), ttl] (whole seconds), evenly: the golden-ratio sequence fills the
    range with no clumps (uniform random draws clump: some minute of a 20-minute spread would get 6 % of the
    keys by chance). ``seed`` shifts where the sequence starts."""

    PHI = 0.6180339887498949

    def __init__(self, ttl: int, jitter: float, seed: int | None = None):
        self.low, self.high = max(1, int(ttl * (1 - jitter))), ttl
        self._at = random.Random(seed).random()

    def __call__(self) -> int:
        self._at = (self._at + self.PHI) % 1.0
        return self.low + int(self._at * (self.high - self.low + 1))


def expiry_histogram(minutes: dict[int, int]) -> dict[str, int]:
    """Keys expiring per minute, labelled ``YYYY-MM-DDTHH:MM`` (UTC), from counts per unix minute."""
    from datetime import UTC, datetime

    return {datetime.fromtimestamp(m * 60, UTC).strftime("%Y-%m-%dT%H:%M"): n for m, n in sorted(minutes.items())}


EXPIRY_ALARM_SHARE = 0.05  # more warmed keys than this expiring in one minute: a stampede waiting to happen
EXPIRY_ALARM_MIN_KEYS = 100  # below this many keys, a few in one minute are no stampede


def expiry_alarm(histogram: dict[str, int], ttl: int, jitter: float) -> str | None:
    total = sum(histogram.values())
    if total < EXPIRY_ALARM_MIN_KEYS:
        return None
    minute, peak = max(histogram.items(), key=lambda kv: kv[1])
    if peak / total <= EXPIRY_ALARM_SHARE:
        return None
    spread = int(ttl * jitter)
    return (f"{peak} of {total} warmed keys ({peak / total:.0%}) expire in the minute {minute} UTC: their misses "
            f"will reach the database together. TTLs spread over {spread} s; spreading them over at least 25 "
            f"minutes (ttl_jitter ≥ {min(0.99, 1500 / ttl):.2f} for ttl_seconds {ttl}) keeps each minute under "
            f"{EXPIRY_ALARM_SHARE:.0%}")
