"""Where the backup history begins: the first window a backup was taken for.

The UI's partition range starts there (unless ``backup.start`` pins it), so that the partitions page shows
the windows that could have a backup, not every window since a fixed date.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ops_project.backups.catalog import read_manifest
from ops_project.backups.layout import MANIFEST, backup_time, database_prefix, parse_key
from ops_project.common import fleet
from ops_project.common.errors import IntegrityError, OpsError
from ops_project.storage import ObjectStore


def _first_complete(store: ObjectStore, database: str) -> str | None:
    """The oldest backup id of ``database`` that has a manifest (listing is in key order: ids sort by time)."""
    for info in store.list(database_prefix(database)):
        parsed = parse_key(info.key)
        if parsed and parsed[2] == MANIFEST:
            return parsed[1]
    return None


def first_window_start(store: ObjectStore, databases: Iterable[str]) -> datetime | None:
    """The start of the earliest window any of ``databases`` has a complete backup for, in ``store``.

    A backup taken outside a window (an ad-hoc ``backups take``) counts from its snapshot time. ``None``: the
    region holds no complete backup of these databases yet.
    """
    earliest: datetime | None = None
    for database in databases:
        backup_id = _first_complete(store, database)
        if backup_id is None:
            continue
        try:
            manifest = read_manifest(store, database, backup_id)
            start = datetime.fromisoformat(manifest.window_start) if manifest.window_start else backup_time(backup_id)
        except IntegrityError:  # an unreadable manifest still shows that history began by then
            start = backup_time(backup_id)
        if earliest is None or start < earliest:
            earliest = start
    return earliest


def _state_file(cfg) -> Path:
    return cfg.source.parent / ".ops" / "state" / "history-start.json"


def _remembered(cfg) -> datetime | None:
    try:
        doc = json.loads(_state_file(cfg).read_text())
        if doc.get("primary") == cfg.primary.name:
            return datetime.fromisoformat(doc["start"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _remember(cfg, start: datetime) -> None:
    path = _state_file(cfg)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"primary": cfg.primary.name, "start": start.isoformat()}))
        tmp.replace(path)
    except OSError:
        pass  # only a shortcut: the next load reads the region again


def history_start(cfg, now: datetime, *, log=None) -> datetime:
    """The first backup window (naive, in the configured time zone, as Dagster's partitions take it).

    ``backup.start`` when configured (no I/O at all: the choice for production). Otherwise the window of the
    first backup in the primary region, remembered under ``.ops/state`` beside the configuration so that later
    loads read no region. With no backup yet (or the region unreadable) it is one day before ``now``, or the
    start of the newest finished window if that is earlier (a weekly cron), so that the schedule's window
    exists; the range then moves to the first backup once there is one.
    """
    zone = ZoneInfo(cfg.timezone)
    if cfg.backup.start is not None:
        return cfg.backup.start

    def local(at: datetime) -> datetime:
        return at.astimezone(zone).replace(tzinfo=None)

    remembered = _remembered(cfg)
    if remembered is not None:
        return local(remembered)
    from ops_project.clients import Clients  # noqa: PLC0415 - only when nothing is remembered

    try:
        found = first_window_start(Clients(cfg).store(cfg.primary), fleet.of(cfg).names)
    except OpsError as exc:
        found = None
        if log:
            log(f"the backup history's start could not be read from region {cfg.primary.name} ({exc}); the "
                f"partitions start one day ago until it can (set backup.start to pin them)")
    if found is not None:
        _remember(cfg, found)
        return local(found)
    from cronsim import CronSim  # noqa: PLC0415

    ticks = CronSim(cfg.backup.cron, now.astimezone(zone), reverse=True)
    next(ticks)  # the end of the newest finished window
    newest_start = next(ticks)  # ... and its start: that window must exist, whatever the cron's period
    day_before = local(now - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return min(day_before, local(newest_start))
