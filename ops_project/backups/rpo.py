"""The verified RPO: how old is the newest backup that a restore has proven good?

That, not the age of the last backup taken, is the data a restore would lose today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ops_project.backups.catalog import BackupEntry, list_backups
from ops_project.common.markdown import table
from ops_project.storage import ObjectStore


@dataclass(frozen=True)
class RpoStatus:
    database: str
    objective_minutes: int
    verified_backup_id: str | None
    verified_snapshot_at: str | None
    verified_age_minutes: float | None
    newest_backup_id: str | None
    newest_age_minutes: float | None

    @property
    def ok(self) -> bool:
        return self.verified_age_minutes is not None and self.verified_age_minutes <= self.objective_minutes

    def message(self) -> str:
        if self.verified_backup_id is None:
            newest = f"; newest unverified backup {self.newest_backup_id}" if self.newest_backup_id else ""
            return f"{self.database}: no backup has passed restore verification{newest}"
        return (f"{self.database}: newest verified backup {self.verified_backup_id} is "
                f"{self.verified_age_minutes:.0f} min old (objective {self.objective_minutes} min)")


def verified_rpo(stores: list[ObjectStore], database: str, objective_minutes: int, *, now: datetime) -> RpoStatus:
    entries = [e for store in stores for e in list_backups(store, database) if e.complete]
    verified_ids = {e.backup_id for e in entries if e.verified}
    good = [e for e in entries if e.backup_id in verified_ids]
    newest = max(entries, key=lambda e: e.snapshot_at, default=None)
    best = max(good, key=lambda e: e.snapshot_at, default=None)

    def age(entry: BackupEntry | None) -> float | None:
        return entry.age_minutes(now) if entry else None

    return RpoStatus(database, objective_minutes, best.backup_id if best else None,
                     best.manifest.snapshot_started_at if best else None, age(best),
                     newest.backup_id if newest else None, age(newest))


def rpo_table(statuses: list[RpoStatus]) -> str:
    """The markdown table on-call reads: verified and newest backup per database, with their ages."""
    def age(minutes: float | None) -> str:
        return "-" if minutes is None else f"{minutes:g}"

    return table(["database", "verified backup", "age (min)", "newest backup", "age (min)", "ok"],
                 [(s.database, s.verified_backup_id or "-", age(s.verified_age_minutes), s.newest_backup_id or "-",
                   age(s.newest_age_minutes), "yes" if s.ok else "NO") for s in statuses])
