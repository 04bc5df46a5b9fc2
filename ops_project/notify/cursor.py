"""The check-alert sensor's cursor: which finished runs were already read, independent of storage.

Dagster's event storage ids are not comparable across storages (SQLite keeps one event database per
run; PostgreSQL one table), so the cursor is a time instead: the newest run end read so far, plus the
ids of the runs read within an overlap before it. Runs are fetched from ``after − OVERLAP`` on, so a run
whose end was committed a little late is still read, and the ids keep it from being read twice.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

OVERLAP_SECONDS = 300.0


@dataclass
class RunCursor:
    after: float  # unix time: every run that ended before this (minus the overlap) has been read
    done: dict[str, float] = field(default_factory=dict)  # run id → its update time, within the overlap

    @property
    def fetch_from(self) -> float:
        return self.after - OVERLAP_SECONDS

    def seen(self, run_id: str) -> bool:
        return run_id in self.done

    def mark(self, run_id: str, updated_at: float) -> None:
        self.done[run_id] = updated_at
        self.after = max(self.after, updated_at)
        floor = self.after - OVERLAP_SECONDS
        self.done = {k: v for k, v in self.done.items() if v >= floor}

    def dump(self) -> str:
        return json.dumps({"v": 1, "after": self.after, "done": self.done}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def load(cls, raw: str | None) -> RunCursor | None:
        """None for no cursor (a first look); ValueError for one that cannot be read."""
        if not raw:
            return None
        try:
            doc = json.loads(raw)
            cursor = cls(after=float(doc["after"]), done={str(k): float(v) for k, v in dict(doc["done"]).items()})
            if not math.isfinite(cursor.after) or not all(math.isfinite(v) for v in cursor.done.values()):
                raise ValueError("times must be finite")
            return cursor
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable alert cursor ({type(exc).__name__})") from None
