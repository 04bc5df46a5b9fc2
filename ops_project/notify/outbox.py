"""Alerts that could not be delivered yet, per channel, on disk; retried on every sensor tick.

An entry that cannot be read (a torn write, a hand edit, an alert for a channel no longer configured)
is moved to ``outbox/quarantine/`` with the reason beside it: it never blocks the entries behind it.
An entry still undeliverable after ``max_age_hours`` is quarantined too, so a permanently rejected
alert (say an HTTP 400) does not retry forever.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ops_project.notify.alert import Alert


class Outbox:
    def __init__(self, state_dir: Path, *, max_age_hours: float = 72):
        self.dir = Path(state_dir) / "outbox"
        self.quarantine_dir = self.dir / "quarantine"
        self.max_age = max_age_hours * 3600

    def put(self, channel: str, alert: Alert) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{channel}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.dir / (name + ".tmp")
        tmp.write_text(json.dumps({"channel": channel, "queued_at": time.time(), "alert": alert.to_json()}))
        target = self.dir / name
        os.replace(tmp, target)
        return target

    def pending(self, channel: str | None = None) -> list[Path]:
        """Waiting entries, oldest first (of one channel, when given)."""
        paths = sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []
        return [p for p in paths if channel is None or p.name.split("-")[1:2] == [channel]]

    def oldest(self, channel: str) -> float | None:
        """When the oldest entry still waiting for ``channel`` was queued (unix time), or None."""
        for path in self.pending(channel):
            try:
                return float(json.loads(path.read_text())["queued_at"])
            except (OSError, ValueError, KeyError, TypeError):
                return path.stat().st_mtime if path.exists() else None
        return None

    def quarantined(self) -> list[Path]:
        return sorted(self.quarantine_dir.glob("*.json")) if self.quarantine_dir.is_dir() else []

    def quarantine(self, path: Path, reason: str) -> None:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.quarantine_dir / path.name)
        (self.quarantine_dir / (path.name + ".reason")).write_text(reason + "\n")

    def drain(self, deliver: Callable[[str, Alert], bool], channels: set[str], *,
              now: float | None = None) -> tuple[int, list[str]]:
        """Try every pending entry in order; ``deliver(channel, alert)`` returns False when the channel is
        still down (its later entries then wait for the next tick). Returns (delivered, problems)."""
        now = time.time() if now is None else now
        delivered, problems, down = 0, [], set()
        for path in self.pending():
            try:
                doc = json.loads(path.read_text())
                channel, alert, queued_at = str(doc["channel"]), Alert.from_json(doc["alert"]), float(doc["queued_at"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                reason = f"unreadable outbox entry ({type(exc).__name__}: {exc})"[:500]
                self.quarantine(path, reason)
                problems.append(f"{path.name}: {reason}; moved to {self.quarantine_dir}")
                continue
            if channel not in channels:
                self.quarantine(path, f"channel {channel!r} is no longer configured")
                problems.append(f"{path.name}: channel {channel!r} is no longer configured; quarantined")
                continue
            if channel in down:
                continue
            if deliver(channel, alert):
                path.unlink(missing_ok=True)
                delivered += 1
            elif now - queued_at > self.max_age:
                self.quarantine(path, f"undeliverable for {self.max_age / 3600:.0f} h")
                problems.append(f"{path.name}: {channel} refused it for {self.max_age / 3600:.0f} h; quarantined")
            else:
                down.add(channel)
        return delivered, problems
