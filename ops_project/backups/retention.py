"""Retention: keep-last plus daily/weekly/monthly (grandfather-father-son), planned before acting.

Rules that cannot lose data (restic's spirit): the policy must keep at least one backup; the
newest good backup (verified, or before verification exists the newest complete one) is always
kept; incomplete leftovers are removed only once they are older than a day (they may be uploads
in progress).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ops_project.backups.catalog import BackupEntry, list_backups, verified_ids
from ops_project.backups.config import Retention
from ops_project.backups.layout import MANIFEST
from ops_project.common.markdown import table
from ops_project.storage import ObjectStore, UnfinishedUpload


@dataclass
class RetentionPlan:
    region: str
    keep: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (db, id) -> reasons
    delete: list[BackupEntry] = field(default_factory=list)
    delete_incomplete: list[BackupEntry] = field(default_factory=list)
    keep_incomplete: list[BackupEntry] = field(default_factory=list)
    abort_uploads: list[UnfinishedUpload] = field(default_factory=list)

    def markdown(self) -> str:
        rows = [(db, bid, "keep", ", ".join(reasons)) for (db, bid), reasons in sorted(self.keep.items())]
        rows += [(e.database, e.backup_id, "delete", "outside the policy") for e in self.delete]
        rows += [(e.database, e.backup_id, "delete", "incomplete (no manifest), older than allowed")
                 for e in self.delete_incomplete]
        rows += [(e.database, e.backup_id, "keep", "manifest unreadable: inspect by hand" if e.problem else
                  "incomplete but recent: may be in progress") for e in self.keep_incomplete]
        rows += [("-", u.key, "abort upload", "unfinished upload, older than allowed") for u in self.abort_uploads]
        return f"### Retention plan for region `{self.region}`\n\n" + table(
            ["database", "backup", "action", "why"], rows)


def _buckets(entries: list[BackupEntry], count: int, key: Callable[[datetime], object], tz: ZoneInfo,
             label: str, keep: dict) -> None:
    """Keep the newest backup of each of the ``count`` newest periods that have one."""
    seen: list[object] = []
    for entry in sorted(entries, key=lambda e: e.backup_id, reverse=True):
        period = key(entry.taken_at.astimezone(tz))
        if period in seen:
            continue
        if len(seen) >= count:
            break
        seen.append(period)
        keep.setdefault((entry.database, entry.backup_id), []).append(f"{label} {period}")


def plan(entries: Iterable[BackupEntry], policy: Retention, *, now: datetime, tz: ZoneInfo, region: str,
         is_verified: Callable[[BackupEntry], bool] = lambda _e: False,
         uploads: Iterable[UnfinishedUpload] = ()) -> RetentionPlan:
    result = RetentionPlan(region)
    too_old = timedelta(hours=policy.incomplete_after_hours).total_seconds()
    result.abort_uploads = [u for u in uploads if now.timestamp() - u.initiated > too_old]
    entries = list(entries)
    by_db: dict[str, list[BackupEntry]] = {}
    for entry in entries:
        if entry.complete:
            by_db.setdefault(entry.database, []).append(entry)
        elif entry.problem:
            result.keep_incomplete.append(entry)  # an unreadable manifest is for a person to look at
        elif now.timestamp() - (entry.newest_object_time or entry.taken_at.timestamp()) > too_old:
            result.delete_incomplete.append(entry)
        else:
            result.keep_incomplete.append(entry)
    for complete in by_db.values():
        complete.sort(key=lambda e: e.backup_id)
        keep = result.keep
        for entry in complete[-policy.keep_last:]:
            keep.setdefault((entry.database, entry.backup_id), []).append("keep_last")
        _buckets(complete, policy.daily, lambda t: t.strftime("%Y-%m-%d"), tz, "daily", keep)
        _buckets(complete, policy.weekly, lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2]), tz, "weekly", keep)
        _buckets(complete, policy.monthly, lambda t: t.strftime("%Y-%m"), tz, "monthly", keep)
        verified = [e for e in complete if is_verified(e)]
        newest_good = (verified or complete)[-1]
        keep.setdefault((newest_good.database, newest_good.backup_id), []).append(
            "newest verified" if verified else "newest complete")
        result.delete.extend(e for e in complete if (e.database, e.backup_id) not in keep)
    return result


def plan_region(store: ObjectStore, policy: Retention, *, now: datetime, tz: ZoneInfo) -> RetentionPlan:
    """The plan for one region on its own (backups verified in this region are protected)."""
    return plan_regions([store], policy, now=now, tz=tz)[0]


def plan_regions(stores: list[ObjectStore], policy: Retention, *, now: datetime,
                 tz: ZoneInfo) -> list[RetentionPlan]:
    """One plan per region, in order. A backup verified in any region counts as verified in every region
    (the stored bytes are identical, checked by sha256 at each replica), so each region keeps its copy."""
    listed = [list_backups(store) for store in stores]
    verified = set().union(*(verified_ids(entries) for entries in listed))
    return [plan(entries, policy, now=now, tz=tz, region=store.region,
                 is_verified=lambda e: (e.database, e.backup_id) in verified,
                 uploads=store.unfinished_uploads("backups/"))
            for store, entries in zip(stores, listed, strict=True)]


def apply(store: ObjectStore, retention_plan: RetentionPlan) -> list[str]:
    """Delete what the plan says; the manifest goes first so a half-deleted backup is never complete."""
    deleted = []
    for entry in retention_plan.delete + retention_plan.delete_incomplete:
        keys = sorted(entry.keys, key=lambda k: not k.endswith("/" + MANIFEST))
        for key in keys:
            store.delete(key)
            deleted.append(key)
    for upload in retention_plan.abort_uploads:
        store.abort_upload(upload)
        deleted.append(f"{upload.key} (unfinished upload {upload.upload_id})")
    return deleted
