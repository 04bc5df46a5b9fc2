"""Streaming aggregation per fingerprint: counts and sums exact, percentiles from a bounded reservoir.

Memory is bounded by the number of distinct fingerprints times the reservoir size, whatever the log's
length. While a fingerprint has no more calls than the reservoir holds, its percentiles are exact.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

RESERVOIR = 2048


@dataclass(slots=True)
class QueryStats:
    fingerprint: str
    query: str
    calls: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    rows: int = 0
    first_seen: str = ""
    last_seen: str = ""
    example: str = ""
    sample: list[float] = field(default_factory=list)
    _rng: random.Random | None = None

    def add(self, ms: float, ts: str, rows: int | None = None, example: str | None = None) -> None:
        self.calls += 1
        self.total_ms += ms
        if ms > self.max_ms:
            self.max_ms = ms
        if rows:
            self.rows += rows
        if ts and (not self.first_seen or ts < self.first_seen):
            self.first_seen = ts
        if ts > self.last_seen:
            self.last_seen = ts
        if example is not None and not self.example:
            self.example = example
        if len(self.sample) < RESERVOIR:
            self.sample.append(ms)
            return
        if self._rng is None:  # seeded by the fingerprint: the same log gives the same report
            self._rng = random.Random(self.fingerprint)
        j = int(self._rng.random() * self.calls)  # Algorithm R: each call kept with probability RESERVOIR / calls
        if j < RESERVOIR:
            self.sample[j] = ms

    def summary(self, total_all_ms: float) -> dict:
        ordered = sorted(self.sample)

        def pct(q: float) -> float:
            return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1] if ordered else 0.0

        return {
            "fingerprint": self.fingerprint, "query": self.query, "calls": self.calls,
            "total_ms": round(self.total_ms, 3), "mean_ms": round(self.total_ms / self.calls, 3) if self.calls else 0.0,
            "p50_ms": round(pct(50), 3), "p95_ms": round(pct(95), 3), "p99_ms": round(pct(99), 3),
            "max_ms": round(self.max_ms, 3), "rows": self.rows,
            "share": round(self.total_ms / total_all_ms, 4) if total_all_ms else 0.0,
            "first_seen": self.first_seen, "last_seen": self.last_seen, "example": self.example,
        }
