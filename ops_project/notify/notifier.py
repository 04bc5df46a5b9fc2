"""The notifier: open problems said once per ``dedup_hours``, resolved once, routed by severity, never lost,
never with a secret.

Every alert is scrubbed of every secret value before anything (a channel, the outbox on disk, a log
line) sees it. A channel that cannot be reached keeps its copy in the outbox; the other channels still
get theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ops_project.notify.alert import Alert
from ops_project.notify.channels import Channel, NotifyError
from ops_project.notify.ledger import Ledger
from ops_project.notify.outbox import Outbox

__all__ = ["Alert", "Notifier", "NotifyError"]


class Notifier:
    def __init__(self, channels: Iterable[Channel], state_dir: Path, *,
                 route: Callable[[str], list[str]] | None = None, dedup_hours: float = 24,
                 secrets: Iterable[str] = ()):
        self.channels = {c.name: c for c in channels}
        self.route = route or (lambda _severity: list(self.channels))
        self.state_dir = Path(state_dir)
        self.ledger = Ledger(self.state_dir, dedup_hours=dedup_hours)
        self.outbox = Outbox(self.state_dir)
        self.secrets = sorted({s for s in secrets if s})
        self.problems: list[str] = []  # what went wrong delivering, for the sensor's log (scrubbed)

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def _deliver_now(self, channel: str, alert: Alert) -> bool:
        try:
            self.channels[channel].deliver(alert)
        except NotifyError as exc:
            self.problems.append(str(exc))
            return False
        return True

    def _dispatch(self, alert: Alert) -> None:
        for name in self.route(alert.severity):
            if name in self.channels and not self._deliver_now(name, alert):
                self.outbox.put(name, alert)

    def raise_problem(self, alert: Alert) -> bool:
        """The problem ``alert.key`` was seen. True when it was said now (new, or a reminder was due)."""
        if not self.enabled:
            return False
        alert = alert.scrubbed(self.secrets)
        if not self.ledger.raised(alert.key, alert.title, alert.severity):
            return False
        self._dispatch(alert)
        return True

    def clear_problem(self, key: str, *, text: str = "", link: str | None = None) -> bool:
        """The problem ``key`` is gone. True when it had been open (and "resolved" was said)."""
        if not self.enabled:
            return False
        problem = self.ledger.cleared(key)
        if problem is None:
            return False
        self._dispatch(Alert(key=key, title=problem.title, text=text or "the problem has cleared", link=link,
                             severity=problem.severity, resolved=True).scrubbed(self.secrets))
        return True

    def flush(self) -> int:
        """Deliver what waited in the outbox; returns how many went out."""
        if not self.enabled:
            return 0
        delivered, problems = self.outbox.drain(self._deliver_now, set(self.channels))
        self.problems += problems
        return delivered
