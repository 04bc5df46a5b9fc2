"""Log timestamps as instants: PostgreSQL's ``2026-12-01 23:40:01.123 UTC`` (``%m``, ``%t``, csvlog,
jsonlog), epoch seconds (``%n``), and ISO 8601 (D1 logs). A zone PostgreSQL writes as an abbreviation other
than UTC/GMT is read in the configured time zone (set ``log_timezone`` to UTC, or to that zone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_OFFSET = re.compile(r"^([+-])(\d\d):?(\d\d)?$")


class Clock:
    """Parses timestamps to aware datetimes (to the second), caching by the second."""

    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self._cache: dict[str, datetime | None] = {}

    def __call__(self, ts: str) -> datetime | None:
        if not ts:
            return None
        if len(ts) > 10 and ts[10] == "T":  # ISO 8601
            try:
                at = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            except ValueError:
                return None
            return at if at.tzinfo else at.replace(tzinfo=self.tz)
        if ts[:1].isdigit() and "-" not in ts[:5]:  # epoch seconds (or milliseconds, as some loggers write)
            try:
                value = float(ts)
                return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
            except (ValueError, OverflowError, OSError):
                return None
        key = ts[:19] + ts[ts.find(" ", 19):] if len(ts) > 19 else ts
        if key in self._cache:
            return self._cache[key]
        try:
            base = datetime.strptime(ts[:19], "%Y-%m-%d %H:%M:%S")
        except ValueError:
            self._cache[key] = None
            return None
        zone = ts[19:].lstrip("0123456789.").strip()
        offset = _OFFSET.match(zone)
        if zone in ("UTC", "GMT", "Z"):
            at = base.replace(tzinfo=UTC)
        elif offset:
            sign = -1 if offset[1] == "-" else 1
            at = base.replace(tzinfo=timezone(sign * timedelta(hours=int(offset[2]), minutes=int(offset[3] or 0))))
        else:
            at = base.replace(tzinfo=self.tz)
        self._cache[key] = at
        return at
