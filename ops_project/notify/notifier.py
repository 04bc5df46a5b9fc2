"""The notifier: open problems said once per ``dedup_hours`` (and at once when they get worse), resolved once
to every channel that heard them, routed by severity, never lost, never with a secret.

Every alert is scrubbed of every secret value before anything (a channel, the outbox on disk, a log line)
sees it. A channel that cannot be reached keeps its copy in the outbox, in order: while a channel has
alerts waiting, new ones queue behind them, so a "resolved" never overtakes its alert. The other channels
still get theirs at once. A channel that has not delivered for ``stale_after_hours`` is itself a critical
problem, said on every other channel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ops_project.common.scrub import scrub
from ops_project.notify.alert import Alert
from ops_project.notify.channels import Channel, NotifyError
from ops_project.notify.ledger import Ledger
from ops_project.notify.outbox import Outbox

__all__ = ["Alert", "Notifier", "NotifyError"]


class Notifier:
    def __init__(self, channels: Iterable[Channel], state_dir: Path, *,
                 route: Callable[[str], list[str]] | None = None, dedup_hours: float = 24,
                 secrets: Iterable[str] = (), stale_after_hours: float = 1):
        self.channels = {c.name: c for c in channels}
        self.route = route or (lambda _severity: list(self.channels))
        self.state_dir = Path(state_dir)
        self.ledger = Ledger(self.state_dir, dedup_hours=dedup_hours)
        self.outbox = Outbox(self.state_dir)
        self.secrets = sorted({s for s in secrets if s})
        self.stale_after = stale_after_hours * 3600
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
        except Exception as exc:  # noqa: BLE001 - any failure of a channel keeps the alert in the outbox
            self.problems.append(scrub(f"{channel} failed with {type(exc).__name__}; '{alert.title}' waits in the "
                                       f"outbox", self.secrets))
            return False
        return True

    def _dispatch(self, alert: Alert, channels: Iterable[str]) -> list[str]:
        """Deliver or queue on each channel; returns the channels that have it. An outbox that cannot be
        written raises: the caller then records nothing, and the alert is said again next time."""
        used, queued_behind = [], False
        waiting = {p.name.split("-")[1] for p in self.outbox.pending()}  # one listing, every channel
        for name in dict.fromkeys(channels):
            if name not in self.channels:
                continue
            if name in waiting:
                self.outbox.put(name, alert)
                queued_behind = True
            elif not self._deliver_now(name, alert):
                self.outbox.put(name, alert)
            used.append(name)
        if queued_behind:
            self.flush(check_health=False)
        return used

    def raise_problem(self, alert: Alert, *, at: float | None = None, channels: list[str] | None = None) -> bool:
        """The problem ``alert.key`` was seen (as of ``at``, a unix time, when known: news older than the problem's
        last clearing does not open it again). True when it was said now (new, worse, or a reminder was due).
        ``channels`` overrides the route (the health of a channel is said on the others)."""
        if not self.enabled:
            return False
        cleared = self.ledger.cleared_at(alert.key)
        if at is not None and cleared is not None and at <= cleared:
            return False
        alert = alert.scrubbed(self.secrets)
        if not self.ledger.due(alert.key, alert.severity):
            self.ledger.record(alert.key, alert.title, alert.severity, said=False, seen_at=at)
            return False
        used = self._dispatch(alert, self.route(alert.severity) if channels is None else channels)
        self.ledger.record(alert.key, alert.title, alert.severity, said=True, channels=used, seen_at=at)
        return True

    def clear_problem(self, key: str, *, text: str = "", link: str | None = None,
                      since: float | None = None) -> bool:
        """The problem ``key`` is gone (as of ``since``, a unix time, when known: news older than the problem
        does not clear it). True when it had been open (and "resolved" was said, to every channel that heard it)."""
        if not self.enabled:
            return False
        if not self.ledger.exists(key):
            return False
        opened = self.ledger.opened_at(key)
        if since is not None and opened is not None and since < opened:
            return False
        problem = self.ledger.cleared(key, at=since)
        if problem is None:
            return False
        channels = [*problem.channels, *self.route(problem.severity)]
        self._dispatch(Alert(key=key, title=problem.title, text=text or "the problem has cleared", link=link,
                             severity=problem.severity, resolved=True).scrubbed(self.secrets), channels)
        return True

    def flush(self, *, check_health: bool = True) -> int:
        """Deliver what waited in the outbox (in order); returns how many went out. A channel that has not
        delivered for ``stale_after_hours`` is said, as a critical problem, on the others."""
        if not self.enabled:
            return 0
        delivered, problems = self.outbox.drain(self._deliver_now, set(self.channels))
        self.problems += problems
        if check_health:
            delivered += self._channel_health()
        return delivered

    def _channel_health(self) -> int:
        said = 0
        now = time.time()
        for name in self.channels:
            oldest = self.outbox.oldest(name)
            key = f"channel:{name}"
            if oldest is not None and now - oldest >= self.stale_after:
                others = [c for c in self.channels if c != name]
                if not others:
                    self.problems.append(f"alert channel {name} has delivered nothing for "
                                         f"{(now - oldest) / 3600:.1f} h and there is no other channel to say so")
                    continue
                alert = Alert(key=key, severity="critical",
                              title=f"alert channel {name} has delivered nothing for {(now - oldest) / 3600:.1f} h",
                              text=f"{len(self.outbox.pending(name))} alert(s) wait in {self.outbox.dir}. Check the "
                                   f"channel's URL, key or server; they go out as soon as it answers.")
                said += self.raise_problem(alert, channels=others)
            elif oldest is None:
                said += self.clear_problem(key, text=f"alert channel {name} delivers again")
        return said
