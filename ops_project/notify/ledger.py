"""Open problems, remembered across runs and processes: the basis of deduplication and of "resolved".

One small JSON file per problem key, written atomically, so that sensor ticks in different processes
agree. A problem is said when it opens, then at most once per ``dedup_hours`` while it stays open (a
reminder), at once when it gets worse (a higher severity), and once more when it clears, to every
channel it was ever said to. The ledger is written only after the alert was delivered or queued, so a
failure in between says it again rather than never. An unreadable state file counts as "not open" (the
alert goes out again rather than never) and is replaced.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

SEVERITY_RANK = {"warning": 1, "error": 2, "critical": 3}


@dataclass
class Problem:
    key: str
    title: str
    severity: str
    opened_at: float
    last_sent_at: float
    seen: int = 1
    channels: list[str] = field(default_factory=list)  # every channel it was said to: where "resolved" goes

    @classmethod
    def from_json(cls, doc: object) -> Problem:
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        problem = cls(key=str(doc["key"]), title=str(doc["title"]), severity=str(doc["severity"]),
                      opened_at=float(doc["opened_at"]), last_sent_at=float(doc["last_sent_at"]),
                      seen=int(doc.get("seen", 1)), channels=[str(c) for c in doc.get("channels", [])])
        if not (math.isfinite(problem.opened_at) and math.isfinite(problem.last_sent_at)):
            raise ValueError("times must be finite")
        return problem


class Ledger:
    def __init__(self, state_dir: Path, *, dedup_hours: float = 24):
        self.dir = Path(state_dir) / "problems"
        self.dedup_seconds = dedup_hours * 3600

    def _file(self, key: str) -> Path:
        return self.dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def get(self, key: str) -> Problem | None:
        try:
            problem = Problem.from_json(json.loads(self._file(key).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return problem if problem.key == key else None

    def _put(self, problem: Problem) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self._file(problem.key)
        tmp = target.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(asdict(problem)))
        os.replace(tmp, target)

    def due(self, key: str, severity: str, *, now: float | None = None) -> bool:
        """Must the problem be said now: new, its reminder due, or worse than when it was last said?"""
        now = time.time() if now is None else now
        problem = self.get(key)
        if problem is None:
            return True
        worse = SEVERITY_RANK.get(severity, 2) > SEVERITY_RANK.get(problem.severity, 2)
        return worse or now - problem.last_sent_at >= self.dedup_seconds

    def record(self, key: str, title: str, severity: str, *, said: bool, channels: list[str] = (),
               now: float | None = None, seen_at: float | None = None) -> None:
        """Note that the problem was seen (at ``seen_at``, when known) and, when ``said``, said to ``channels``."""
        now = time.time() if now is None else now
        problem = self.get(key)
        if problem is None:
            problem = Problem(key, title, severity, opened_at=min(now, seen_at or now), last_sent_at=now, seen=0)
        problem.seen += 1
        if said:
            problem.last_sent_at = now
            problem.title = title
            if SEVERITY_RANK.get(severity, 2) >= SEVERITY_RANK.get(problem.severity, 2):
                problem.severity = severity
            problem.channels = sorted(set(problem.channels) | set(channels))
        self._put(problem)

    def raised(self, key: str, title: str, severity: str, *, now: float | None = None) -> bool:
        """``due`` then ``record`` in one step (for callers that deliver nothing themselves)."""
        due = self.due(key, severity, now=now)
        self.record(key, title, severity, said=due, now=now)
        return due

    def exists(self, key: str) -> bool:
        return self._file(key).exists()

    def opened_at(self, key: str) -> float | None:
        problem = self.get(key)
        return problem.opened_at if problem else None

    def cleared(self, key: str, *, at: float | None = None) -> Problem | None:
        """The problem is gone (as of ``at``); returns it when it was open (so that "resolved" is said once), else
        None. An open problem whose state cannot be read is still cleared, as a bare problem. The time is kept,
        so that older news of the same problem arriving late does not open it again."""
        path = self._file(key)
        problem = self.get(key)
        if problem is None and path.exists():
            problem = Problem(key, key, "error", opened_at=0, last_sent_at=0)
        self.dir.mkdir(parents=True, exist_ok=True)
        mark = path.with_suffix(".cleared")
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(str(time.time() if at is None else at))
        os.replace(tmp, mark)
        path.unlink(missing_ok=True)
        return problem

    def cleared_at(self, key: str) -> float | None:
        try:
            value = float(self._file(key).with_suffix(".cleared").read_text())
        except (OSError, ValueError):
            return None
        return value if math.isfinite(value) else None
