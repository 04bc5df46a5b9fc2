"""The verified RPO: how old is the newest backup that a restore has proven good?

That, not the age of the last backup taken, is the data a restore would lose today.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from ops_project.backups.catalog import BackupEntry, list_backups, read_complete, read_verification
from ops_project.backups.layout import MANIFEST
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
    member_for_minutes: float | None = None  # a discovered tenant: how long it has been in the fleet
    pitr_verified_to: str | None = None  # the newest moment a point-in-time restore test proved (continuous)
    pitr_age_minutes: float | None = None

    @property
    def best_age_minutes(self) -> float | None:
        """The better of the verified snapshot and the verified point in time: what a restore would lose now."""
        ages = [a for a in (self.verified_age_minutes, self.pitr_age_minutes) if a is not None]
        return min(ages) if ages else None

    @property
    def ok(self) -> bool:
        if self.best_age_minutes is None:
            # A tenant younger than the objective cannot have lost more than the objective allows, even with
            # no backup yet; past that, "never verified" is a breach like any other.
            return self.member_for_minutes is not None and self.member_for_minutes <= self.objective_minutes
        return self.best_age_minutes <= self.objective_minutes

    def message(self) -> str:
        if self.pitr_age_minutes is not None and self.best_age_minutes == self.pitr_age_minutes:
            return (f"{self.database}: the continuous replica was proven restorable to {self.pitr_verified_to}, "
                    f"{self.pitr_age_minutes:.0f} min ago (objective {self.objective_minutes} min)")
        if self.verified_backup_id is None and self.ok:
            return (f"{self.database}: new tenant ({self.member_for_minutes:.0f} min in the fleet), first verified "
                    f"backup due within the objective ({self.objective_minutes} min)")
        if self.verified_backup_id is None:
            newest = f"; newest unverified backup {self.newest_backup_id}" if self.newest_backup_id else ""
            return f"{self.database}: no backup has passed restore verification{newest}"
        return (f"{self.database}: newest verified backup {self.verified_backup_id} is "
                f"{self.verified_age_minutes:.0f} min old (objective {self.objective_minutes} min)")


def verified_rpo(stores: list[ObjectStore], database: str, objective_minutes: int, *, now: datetime) -> RpoStatus:
    return verified_rpos(stores, [database], objective_minutes, now=now)[0]


def verified_rpos(stores: list[ObjectStore], databases: list[str], objective_minutes: int, *,
                  now: datetime, joined: Mapping[str, datetime] | None = None,
                  pitr: Mapping[str, datetime] | None = None) -> list[RpoStatus]:
    """The verified RPO of every database in ``databases``, from one listing per region.

    A fleet has a thousand databases with dozens of backups each: reading every manifest and verification
    record each hour took most of a minute. Backup ids sort by when they were taken, so for each database
    only the newest backups are read, newest first, until the newest complete one and the newest verified
    one are found (a verification recorded in any region counts, as a restore from there proved it).
    ``joined``: when each discovered tenant entered the fleet (a declared database has no such grace).
    ``pitr``: the newest moment a point-in-time restore test proved for each continuously protected database;
    the better of it and the verified snapshot counts.
    """
    only = databases[0] if len(databases) == 1 else None  # one database: list its folder, not the region
    by_db: dict[str, list[tuple[ObjectStore, BackupEntry]]] = {}
    for store in stores:
        for entry in list_backups(store, only, read_manifests=False):
            by_db.setdefault(entry.database, []).append((store, entry))
    joined, pitr = joined or {}, pitr or {}
    out = []
    for db in databases:
        status = _status(by_db.get(db, []), db, objective_minutes, now, joined.get(db))
        if db in pitr:
            status = replace(status, pitr_verified_to=pitr[db].isoformat(timespec="seconds"),
                             pitr_age_minutes=round(max(0.0, (now - pitr[db]).total_seconds()) / 60, 1))
        out.append(status)
    return out


def _status(found: list[tuple[ObjectStore, BackupEntry]], database: str, objective: int, now: datetime,
            joined: datetime | None) -> RpoStatus:
    newest_first = sorted(found, key=lambda se: se[1].backup_id, reverse=True)
    passed: dict[str, bool] = {}

    def verified(backup_id: str) -> bool:
        if backup_id not in passed:
            passed[backup_id] = any(read_verification(store, entry) for store, entry in newest_first
                                    if entry.backup_id == backup_id)
        return passed[backup_id]

    newest = best = None
    for store, entry in newest_first:
        if not entry.has(MANIFEST):
            continue
        if newest is None and read_complete(store, entry) is not None:
            newest = entry
        if best is None and verified(entry.backup_id) and read_complete(store, entry) is not None:
            best = entry
        if newest is not None and best is not None:
            break

    def age(entry: BackupEntry | None) -> float | None:
        return entry.age_minutes(now) if entry else None

    return RpoStatus(database, objective, best.backup_id if best else None,
                     best.manifest.snapshot_started_at if best else None, age(best),
                     newest.backup_id if newest else None, age(newest),
                     round((now - joined).total_seconds() / 60, 1) if joined else None)


@dataclass(frozen=True)
class FleetVerdict:
    passed: bool
    message: str
    breached: tuple[RpoStatus, ...]
    total: int

    def metadata(self) -> dict:
        worst = [s.best_age_minutes for s in self.breached if s.best_age_minutes is not None]
        out = {"databases": self.total, "over_objective": len(self.breached),
               "never_verified": sum(1 for s in self.breached if s.best_age_minutes is None),
               "breached": ", ".join(s.database for s in self.breached[:50]) or "none"}
        if worst:
            out["worst_verified_age_minutes"] = max(worst)
        return out


def fleet_verdict(statuses: list[RpoStatus], *, named: int = 10) -> FleetVerdict:
    """One verdict for every database: passed only when each one's newest verified backup is within the
    objective. The message names the databases over it (the oldest first, up to ``named``, then how many more)."""
    breached = sorted((s for s in statuses if not s.ok),
                      key=lambda s: (s.best_age_minutes is not None, -(s.best_age_minutes or 0), s.database))
    if not breached:
        new = [s.database for s in statuses if s.best_age_minutes is None]
        waiting = f" ({len(new)} new tenant(s) awaiting their first verified backup: {', '.join(new[:named])})" \
            if new else ""
        return FleetVerdict(True, f"all {len(statuses)} databases are within the objective{waiting}", (),
                            len(statuses))
    shown = "; ".join(s.message() for s in breached[:named])
    more = f"; and {len(breached) - named} more" if len(breached) > named else ""
    return FleetVerdict(False, f"verified RPO over its objective for {len(breached)} of {len(statuses)} "
                               f"database(s): {shown}{more}", tuple(breached), len(statuses))


def rpo_table(statuses: list[RpoStatus]) -> str:
    """The markdown table on-call reads: verified and newest backup per database, with their ages."""
    def age(minutes: float | None) -> str:
        return "-" if minutes is None else f"{minutes:g}"

    rows = [(s.database, s.verified_backup_id or "-", age(s.verified_age_minutes), s.newest_backup_id or "-",
             age(s.newest_age_minutes), "yes" if s.ok else "NO") for s in statuses]
    if not any(s.pitr_verified_to for s in statuses):
        return table(["database", "verified backup", "age (min)", "newest backup", "age (min)", "ok"], rows)
    return table(["database", "verified backup", "age (min)", "newest backup", "age (min)", "ok",
                  "point in time proven", "age (min)"],
                 [(*row, s.pitr_verified_to or "-", age(s.pitr_age_minutes)) for row, s in zip(rows, statuses,
                                                                                              strict=True)])
