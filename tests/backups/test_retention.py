"""Retention: GFS plan, dry run, incomplete leftovers, and never the newest good backup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from ops_project.backups.catalog import BackupEntry, list_backups
from ops_project.backups.config import Retention
from ops_project.backups.layout import ID_FORMAT, MANIFEST
from ops_project.backups.manifest import Manifest
from ops_project.backups.retention import apply, plan
from ops_project.storage import ObjectInfo
from ops_project.storage.local import LocalStore

TZ = ZoneInfo("Africa/Johannesburg")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def entry(at: datetime, complete: bool = True, db: str = "booking") -> BackupEntry:
    bid = at.strftime(ID_FORMAT)
    objects = [ObjectInfo(f"backups/{db}/{bid}/data.sqlite.zst", 10, at.timestamp())]
    e = BackupEntry("r", db, bid, objects)
    if complete:
        e.objects.append(ObjectInfo(f"backups/{db}/{bid}/{MANIFEST}", 1, at.timestamp()))
        e.manifest = object()  # only presence matters to the planner
    return e


histories = st.lists(
    st.tuples(st.integers(min_value=0, max_value=400 * 24 * 6), st.booleans(), st.sampled_from(["a", "b"])),
    min_size=1, max_size=60)
policies = st.builds(Retention, keep_last=st.integers(1, 5), daily=st.integers(0, 7), weekly=st.integers(0, 4),
                     monthly=st.integers(0, 6))


@settings(max_examples=300, deadline=None)
@given(histories, policies, st.data())
def test_newest_good_backup_is_never_deleted(history, policy, data):
    entries = {}
    for ten_minutes_ago, complete, db in history:
        e = entry(NOW - timedelta(minutes=10 * ten_minutes_ago), complete, db)
        entries[(db, e.backup_id)] = e
    entries = list(entries.values())
    verified_ids = {e.backup_id for e in entries if e.complete and data.draw(st.booleans())}
    result = plan(entries, policy, now=NOW, tz=TZ, region="r", is_verified=lambda e: e.backup_id in verified_ids)
    deleted = {(e.database, e.backup_id) for e in result.delete + result.delete_incomplete}
    for db in {e.database for e in entries}:
        complete = sorted((e for e in entries if e.database == db and e.complete), key=lambda e: e.backup_id)
        if not complete:
            continue
        verified = [e for e in complete if e.backup_id in verified_ids]
        newest_good = (verified or complete)[-1]
        assert (db, newest_good.backup_id) not in deleted
        # keep_last newest complete backups are kept too.
        for e in complete[-policy.keep_last:]:
            assert (db, e.backup_id) not in deleted
    # Every complete backup is either kept or deleted, never both; incomplete ones only when old.
    kept = set(result.keep)
    assert not kept & deleted
    for e in result.delete_incomplete:
        assert not e.complete and NOW - e.taken_at > timedelta(hours=24)


def test_gfs_keeps_one_per_day_week_month():
    days = [entry(NOW - timedelta(days=d, hours=h)) for d in range(0, 90) for h in (1, 5)]
    result = plan(days, Retention(keep_last=2, daily=3, weekly=2, monthly=2), now=NOW, tz=TZ, region="r")
    kept = sorted(result.keep)
    reasons = [r for rs in result.keep.values() for r in rs]
    assert sum(r == "keep_last" for r in reasons) == 2
    assert sum(r.startswith("daily") for r in reasons) == 3
    assert sum(r.startswith("weekly") for r in reasons) == 2
    assert sum(r.startswith("monthly") for r in reasons) == 2
    assert len(kept) + len(result.delete) == len(days)
    assert len(kept) <= 2 + 3 + 2 + 2 + 1
    assert "| keep |" in result.markdown() and "| delete |" in result.markdown()


def test_apply_deletes_manifest_first_and_cleans_old_leftovers(tmp_path):
    store = LocalStore("r", tmp_path)

    def put(at: datetime, complete: bool) -> str:
        bid = at.strftime(ID_FORMAT)
        store.put_bytes(f"backups/booking/{bid}/data.sqlite.zst", b"x")
        if complete:
            m = Manifest("booking", "sqlite", bid, None, "", "", 1, 1, "", "", "data.sqlite.zst", {}, None, "", {}, {})
            store.put_bytes(f"backups/booking/{bid}/{MANIFEST}", m.to_json())
        return bid

    now = datetime.now(UTC)
    ids = [put(now - timedelta(days=d), True) for d in range(10, 0, -1)]
    leftover_old = put(now - timedelta(days=3, minutes=7), False)
    import os

    old = (now - timedelta(days=3)).timestamp()
    os.utime(tmp_path / f"backups/booking/{leftover_old}/data.sqlite.zst", (old, old))
    leftover_new = put(now - timedelta(minutes=5), False)
    result = plan(list_backups(store), Retention(keep_last=2, daily=0, weekly=0, monthly=0), now=now, tz=TZ,
                  region="r")
    assert [e.backup_id for e in result.delete_incomplete] == [leftover_old]
    assert [e.backup_id for e in result.keep_incomplete] == [leftover_new]
    deleted = apply(store, result)
    assert deleted.index(f"backups/booking/{ids[0]}/{MANIFEST}") < deleted.index(
        f"backups/booking/{ids[0]}/data.sqlite.zst")
    left = {e.backup_id for e in list_backups(store)}
    assert left == {ids[-1], ids[-2], leftover_new}
