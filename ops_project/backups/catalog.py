"""What backups a region holds: complete ones (with a manifest) and incomplete leftovers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from ops_project.backups.layout import (
    DATA_NAMES,
    MANIFEST,
    VERIFICATION,
    backup_prefix,
    backup_time,
    database_prefix,
    parse_key,
)
from ops_project.backups.manifest import Manifest
from ops_project.common.errors import IntegrityError
from ops_project.storage import ObjectInfo, ObjectStore


@dataclass
class BackupEntry:
    region: str
    database: str
    backup_id: str
    objects: list[ObjectInfo] = field(default_factory=list)
    manifest: Manifest | None = None
    verification: dict | None = None  # the last restore verification's record, if any
    problem: str | None = None  # a manifest that exists but cannot be read: kept, reported, never restored

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.get("passed") is True

    @property
    def failed_verification(self) -> bool:
        """A restore verification convicted this backup (inconclusive runs are never recorded)."""
        return self.verification is not None and self.verification.get("passed") is False

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    @property
    def taken_at(self) -> datetime:
        return backup_time(self.backup_id)

    @property
    def snapshot_at(self) -> datetime:
        """The snapshot's point in time (a complete backup only): later writes are what a restore would lose."""
        return datetime.fromisoformat(self.manifest.snapshot_started_at)

    def age_minutes(self, now: datetime, *, digits: int = 1) -> float:
        return round((now - self.snapshot_at).total_seconds() / 60, digits)

    @property
    def newest_object_time(self) -> float:
        return max((o.modified for o in self.objects), default=0.0)

    @property
    def keys(self) -> list[str]:
        return [o.key for o in self.objects]

    def has(self, name: str) -> bool:
        """Whether this backup's folder holds ``name`` (``MANIFEST``, ``VERIFICATION``…), from the listing."""
        return any(k.endswith("/" + name) for k in self.keys)


def read_manifest(store: ObjectStore, database: str, backup_id: str) -> Manifest:
    """The manifest of one backup, bound to its place: it must name this database and this backup id, and a
    data object inside this backup's own folder. Anything else is an IntegrityError (never restored)."""
    key = backup_prefix(database, backup_id) + MANIFEST
    raw = store.get_bytes(key)
    try:
        manifest = Manifest.from_json(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"region {store.region}: manifest {store.describe(key)} is unreadable ({exc})") from None
    misplaced = [f"{name} {got!r} (its folder says {want!r})" for name, got, want in (
        ("database", manifest.database, database), ("backup_id", manifest.backup_id, backup_id)) if got != want]
    if manifest.data_object not in DATA_NAMES:
        misplaced.append(f"data object {manifest.data_object!r} (expected one of {', '.join(sorted(DATA_NAMES))} "
                         f"in the same folder)")
    if misplaced:
        raise IntegrityError(f"region {store.region}: manifest {store.describe(key)} does not belong to its folder: "
                             f"{'; '.join(misplaced)}")
    return manifest


def list_backups(store: ObjectStore, database: str | None = None, *, read_manifests: bool = True) -> list[BackupEntry]:
    """Every backup in ``store`` (oldest first), complete or not."""
    entries: dict[tuple[str, str], BackupEntry] = {}
    prefix = database_prefix(database) if database else "backups/"
    for info in store.list(prefix):
        parsed = parse_key(info.key)
        if not parsed:
            continue
        db, backup_id, _name = parsed
        entry = entries.setdefault((db, backup_id), BackupEntry(store.region, db, backup_id))
        entry.objects.append(info)
    out = sorted(entries.values(), key=lambda e: (e.database, e.backup_id))
    if read_manifests:
        for entry in out:
            if read_complete(store, entry) is not None:
                read_verification(store, entry)
    return out


def read_complete(store: ObjectStore, entry: BackupEntry) -> BackupEntry | None:
    """Read ``entry``'s manifest (when its listing has one) into it: the entry if complete, else None. An
    unreadable manifest is kept as the entry's ``problem``: one bad manifest must not hide every other backup."""
    if entry.manifest is None and entry.problem is None and entry.has(MANIFEST):
        try:
            entry.manifest = read_manifest(store, entry.database, entry.backup_id)
        except IntegrityError as exc:
            entry.problem = str(exc)
    return entry if entry.complete else None


def read_verification(store: ObjectStore, entry: BackupEntry) -> bool:
    """Read a complete ``entry``'s verification record (when its listing has one) into it; whether it passed.
    An unreadable record proves nothing."""
    if entry.verification is None and entry.has(VERIFICATION) and read_complete(store, entry) is not None:
        try:
            record = json.loads(store.get_bytes(backup_prefix(entry.database, entry.backup_id) + VERIFICATION))
        except ValueError:
            record = None
        entry.verification = record if isinstance(record, dict) else None
    return entry.verified


def verified_ids(entries: list[BackupEntry]) -> set[tuple[str, str]]:
    """(database, backup_id) of every backup that passed restore verification in any region."""
    return {(e.database, e.backup_id) for e in entries if e.verified}


def complete_backups(store: ObjectStore, database: str) -> list[BackupEntry]:
    return [e for e in list_backups(store, database) if e.complete]


def same_window(recorded: str | None, key: str) -> bool:
    """Whether a manifest's partition key names window ``key``. Keys carry their UTC offset
    (``2026-11-22-04:00+0200``); backups taken before they did recorded the same local time without it."""
    if recorded is None:
        return False
    if recorded == key:
        return True
    local = key[:16]  # YYYY-mm-dd-HH:MM
    return recorded == local and len(key) > 16 and key[16] in "+-"


def find_for_partition(store: ObjectStore, database: str, partition_key: str) -> BackupEntry | None:
    """The newest complete backup taken for a partition (window) key, if any."""
    matches = [e for e in complete_backups(store, database) if same_window(e.manifest.partition_key, partition_key)]
    return matches[-1] if matches else None
