"""Alerts to a webhook (Slack-compatible JSON), deduplicated, with the run link, never with a secret.

Dedup is remembered in a small directory (one file per alert key, written atomically), so that
sensor ticks in different processes agree on what was already said.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from ops_project.common.errors import OpsError
from ops_project.notify.scrub import scrub


@dataclass(frozen=True)
class Alert:
    key: str  # what makes two alerts "the same" (deduplicated within the window)
    title: str
    text: str
    link: str | None = None
    severity: str = "error"


class NotifyError(OpsError):
    pass


class Notifier:
    def __init__(self, webhook_url: str | None, state_dir: Path, *, dedup_hours: float = 24,
                 secrets: Iterable[str] = (), timeout: float = 10):
        self.webhook_url = webhook_url
        self.state_dir = Path(state_dir)
        self.dedup_seconds = dedup_hours * 3600
        self.secrets = [s for s in secrets if s]
        self.timeout = timeout

    def _marker(self, key: str) -> Path:
        return self.state_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".sent")

    def already_sent(self, key: str) -> bool:
        marker = self._marker(key)
        try:
            return time.time() - marker.stat().st_mtime < self.dedup_seconds
        except FileNotFoundError:
            return False

    def payload(self, alert: Alert) -> dict:
        icon = ":rotating_light:" if alert.severity == "error" else ":warning:"
        link = f"\n<{alert.link}|Open the run in Dagster>" if alert.link else ""
        text = scrub(f"{icon} *{alert.title}*\n{alert.text}{link}", self.secrets)
        return {"text": text, "username": "ops_project",
                "attachments": [{"color": "danger" if alert.severity == "error" else "warning",
                                 "title": scrub(alert.title, self.secrets), "title_link": alert.link or "",
                                 "text": scrub(alert.text, self.secrets)}]}

    def _outbox(self) -> Path:
        return self.state_dir / "outbox"

    def send(self, alert: Alert) -> bool:
        """Post the alert unless the same one was sent within the window; True when posted.

        When the webhook cannot be reached the alert waits in an outbox (``flush`` retries it) and
        NotifyError says so: an outage of the webhook must not lose the alert.
        """
        if not self.webhook_url:
            return False
        if self.already_sent(alert.key):
            return False
        try:
            self._post(alert)
        except NotifyError:
            box = self._outbox()
            box.mkdir(parents=True, exist_ok=True)
            (box / self._marker(alert.key).with_suffix(".json").name).write_text(json.dumps(
                {"key": alert.key, "title": alert.title, "text": alert.text, "link": alert.link,
                 "severity": alert.severity}))
            raise
        return True

    def flush(self) -> int:
        """Deliver alerts that waited in the outbox; returns how many went out."""
        box, sent = self._outbox(), 0
        if not self.webhook_url or not box.is_dir():
            return 0
        for pending in sorted(box.glob("*.json")):
            alert = Alert(**json.loads(pending.read_text()))
            if not self.already_sent(alert.key):
                try:
                    self._post(alert)
                except NotifyError:
                    break  # still down: keep the rest for the next tick
                sent += 1
            pending.unlink(missing_ok=True)
        return sent

    def _post(self, alert: Alert) -> None:
        try:
            resp = httpx.post(self.webhook_url, json=self.payload(alert), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise NotifyError(f"alert webhook unreachable ({type(exc).__name__}); the alert "
                              f"'{scrub(alert.title, self.secrets)}' was not delivered") from None
        if resp.status_code >= 300:
            raise NotifyError(f"alert webhook answered {resp.status_code}; the alert "
                              f"'{scrub(alert.title, self.secrets)}' was not delivered")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        marker = self._marker(alert.key)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": alert.key, "sent_at": time.time()}))
        os.replace(tmp, marker)
