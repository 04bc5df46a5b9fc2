"""Backup windows: a window [start, end) may be backed up only from its end until it closes.

A snapshot taken later would store today's data under that window's name, so it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ops_project.common.errors import WindowClosedError


@dataclass(frozen=True)
class Window:
    """A backup window [start, end) and the time after which it may no longer be backed up."""

    key: str
    start: datetime
    end: datetime
    closes: datetime


def check_window(window: Window, now: datetime, requested_at: datetime | None = None) -> None:
    """A window may be backed up only between its end and its closing time (end + grace).

    ``requested_at``: when the backup was asked for (a schedule's tick). A run that waited in a
    queue is measured from then, not from when it started, so a busy queue never costs a window; a run
    asked for after the window closed is refused all the same.
    """
    if now < window.end:
        raise WindowClosedError(
            f"backup window {window.key} ends at {window.end.isoformat()}; it cannot be backed up before "
            f"then (now {now.isoformat()}). Materialise the latest finished window instead.")
    # A queue may delay a run by up to one more window length; beyond that its data is not the window's.
    patience = window.end - window.start
    asked = requested_at if requested_at is not None and window.end <= requested_at <= now and \
        now <= window.closes + patience else now
    if asked > window.closes:
        if requested_at is not None and window.end <= requested_at <= window.closes:
            raise WindowClosedError(
                f"backup window {window.key} was MISSED: it was asked for in time ({requested_at.isoformat()}) but "
                f"the run started only at {now.isoformat()}, after the window closed at {window.closes.isoformat()} "
                f"plus one window length of queueing. A snapshot taken now would store today's data under that "
                f"window's name, so nothing was stored. Look at what held the run queue (concurrency limits, a "
                f"stuck run); the next window's backup will run as usual.")
        raise WindowClosedError(
            f"backup window {window.key} ended at {window.end.isoformat()} and could be backed up until "
            f"{window.closes.isoformat()}; it was asked for at {asked.isoformat()}. A snapshot taken now would store "
            f"today's data under that window's name, so nothing was stored. Materialise the latest finished "
            f"window, or take an ad-hoc backup with `python -m ops_project backups take`.", skippable=True)


def make_window(key: str, start: datetime, end: datetime, grace_minutes: int | None) -> Window:
    """Default grace: one window length, so the latest finished window can always still be taken."""
    grace = timedelta(minutes=grace_minutes) if grace_minutes else end - start
    return Window(key=key, start=start, end=end, closes=end + grace)
