"""Open problems, remembered across runs and processes: the basis of deduplication and of "resolved".

One small JSON file per problem key, written atomically, so that sensor ticks in different processes
agree. A problem is said when it opens, then at most once per ``dedup_hours`` while it stays open
(a reminder), and once more when it clears. An unreadable state file counts as "not open" (the alert
goes out again rather than never) and is replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Problem:
    key: str
    title: str
    severity: str
    opened_at: float
    last_sent_at: float
    seen: int = 1


class Ledger:
    def __init__(self, state_dir: Path, *, dedup_hours: float = 24):
        self.dir = Path(state_dir) / "problems"
        self.dedup_seconds = dedup_hours * 3600

    def _file(self, key: str) -> Path:
        return self.dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def get(self, key: str) -> Problem | None:
        try:
            doc = json.loads(self._file(key).read_text())
            problem = Problem(**doc)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, OSError):
            return None
        return problem if problem.key == key else None

    def _put(self, problem: Problem) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self._file(problem.key)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(problem.__dict__))
        os.replace(tmp, target)

    def raised(self, key: str, title: str, severity: str, *, now: float | None = None) -> bool:
        """The problem was seen (again); True when it must be said now (new, or its reminder is due)."""
        now = time.time() if now is None else now
        problem = self.get(key)
        if problem is None:
            self._put(Problem(key, title, severity, opened_at=now, last_sent_at=now))
            return True
        problem.seen += 1
        due = now - problem.last_sent_at >= self.dedup_seconds
        if due:
            problem.last_sent_at = now
        problem.title, problem.severity = title, severity
        self._put(problem)
        return due

    def cleared(self, key: str) -> Problem | None:
        """The problem is gone; returns it when it was open (so that "resolved" is said once), else None."""
        problem = self.get(key)
        self._file(key).unlink(missing_ok=True)
        return problem

    def open_problems(self) -> list[Problem]:
        out = []
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                out.append(Problem(**json.loads(path.read_text())))
            except (ValueError, TypeError, OSError):
                continue
        return out
