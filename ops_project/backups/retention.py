"""Retention: keep-last plus daily/weekly/monthly (grandfather-father-son), planned before acting.

Rules that cannot lose data (restic's spirit): the policy must keep at least one backup; every slot
prefers a verified backup, then one not known to be bad; the newest good backup (verified, else the
newest not known to be bad) is always kept, and a backup that failed verification never stands in for
it; incomplete leftovers and interrupted uploads are removed only once they are older than a day (they
may be uploads in progress).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ops_project.backups.catalog import BackupEntry, list_backups, verified_ids
from ops_project.backups.config import Retention
from ops_project.backups.layout import MANIFEST
from ops_project.common.checks import Outcome
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


Verdict = Callable[[BackupEntry], Outcome | None]  # PASSED / FAILED by restore verification, None: not yet


def _preference(verdict: Verdict) -> Callable[[BackupEntry], tuple[int, str]]:
    """Within a slot: the newest verified backup, else the newest not known to be bad, else the newest."""
    rank = {Outcome.PASSED: 2, None: 1, Outcome.FAILED: 0}
    return lambda e: (rank.get(verdict(e), 1), e.backup_id)


def _buckets(entries: list[BackupEntry], count: int, key: Callable[[datetime], str], tz: ZoneInfo,
             label: str, keep: dict, best: Callable[[BackupEntry], tuple]) -> None:
    """One backup for each of the ``count`` newest periods that have one: the period's preferred backup."""
    periods: dict[str, list[BackupEntry]] = {}
    for entry in entries:
        periods.setdefault(key(entry.taken_at.astimezone(tz)), []).append(entry)
    for period in sorted(periods, reverse=True)[:count]:
        chosen = max(periods[period], key=best)
        keep.setdefault((chosen.database, chosen.backup_id), []).append(f"{label} {period}")


def plan(entries: Iterable[BackupEntry], policy: Retention, *, now: datetime, tz: ZoneInfo, region: str,
         verdict: Verdict = lambda _e: None, uploads: Iterable[UnfinishedUpload] = ()) -> RetentionPlan:
    """What to keep and delete in one region.

    keep_last keeps the newest backups not known to be bad (a backup that failed verification never
    fills a keep_last place); daily/weekly/monthly slots go to the newest periods holding a backup not
    known to be bad, each keeping its period's newest verified backup, else its newest not known to be
    bad. The newest verified backup (else the newest not known to be bad) is always kept: it is what a
    restore would use. A failed backup never protects the rest; when every backup failed, the newest is
    still kept, for a person to inspect.
    """
    result = RetentionPlan(region)
    too_old = timedelta(hours=policy.incomplete_after_hours).total_seconds()
    result.abort_uploads = [u for u in uploads if now.timestamp() - u.last_activity > too_old]
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
    best = _preference(verdict)
    keep = result.keep
    for complete in by_db.values():
        complete.sort(key=lambda e: e.backup_id)
        not_bad = [e for e in complete if verdict(e) is not Outcome.FAILED]
        for entry in not_bad[-policy.keep_last:]:
            keep.setdefault((entry.database, entry.backup_id), []).append("keep_last")
        # Slots go to periods that hold a backup not known to be bad: a day of failed backups never pushes
        # an older good day out of the daily slots.
        _buckets(not_bad, policy.daily, lambda t: t.strftime("%Y-%m-%d"), tz, "daily", keep, best)
        _buckets(not_bad, policy.weekly, lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2]), tz, "weekly",
                 keep, best)
        _buckets(not_bad, policy.monthly, lambda t: t.strftime("%Y-%m"), tz, "monthly", keep, best)
        verified = [e for e in complete if verdict(e) is Outcome.PASSED]
        newest, why = ((verified[-1], "newest verified") if verified else (not_bad[-1], "newest complete")
                       if not_bad else (complete[-1], "newest, though it failed verification: for inspection"))
        keep.setdefault((newest.database, newest.backup_id), []).append(why)
        result.delete.extend(e for e in complete if (e.database, e.backup_id) not in keep)
    return result


def verdicts_across(listed: list[list[BackupEntry]]) -> list[Verdict]:
    """Per region, the verdict of each backup: the region's own record when it has one (its copy is the one
    at stake); else passed if it passed in any region (the bytes are identical, checked by sha256 at each
    replica); else failed if it failed anywhere; else unknown."""
    passed = set().union(*(verified_ids(entries) for entries in listed))
    failed = {(e.database, e.backup_id) for entries in listed for e in entries if e.failed_verification}

    def for_region(entries: list[BackupEntry]) -> Verdict:
        own = {(e.database, e.backup_id): (Outcome.PASSED if e.verified else Outcome.FAILED)
               for e in entries if e.verified or e.failed_verification}

        def verdict(e: BackupEntry) -> Outcome | None:
            k = (e.database, e.backup_id)
            return own.get(k) or (Outcome.PASSED if k in passed else Outcome.FAILED if k in failed else None)
        return verdict

    return [for_region(entries) for entries in listed]


def plan_region(store: ObjectStore, policy: Retention, *, now: datetime, tz: ZoneInfo) -> RetentionPlan:
    """The plan for one region on its own (backups verified in this region are protected)."""
    return plan_regions([store], policy, now=now, tz=tz)[0]


def plan_regions(stores: list[ObjectStore], policy: Retention, *, now: datetime,
                 tz: ZoneInfo) -> list[RetentionPlan]:
    """One plan per region, in order. A backup verified in any region counts as verified in every region
    (the stored bytes are identical, checked by sha256 at each replica), so each region keeps its copy."""
    listed = [list_backups(store) for store in stores]
    return [plan(entries, policy, now=now, tz=tz, region=store.region, verdict=verdict,
                 uploads=store.unfinished_uploads("backups/"))
            for store, entries, verdict in zip(stores, listed, verdicts_across(listed), strict=True)]


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
