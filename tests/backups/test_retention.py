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
from ops_project.common.checks import Outcome
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
    st.tuples(st.integers(min_value=0, max_value=400 * 24 * 6), st.booleans(), st.sampled_from(["a", "b"]),
              st.sampled_from([Outcome.PASSED, Outcome.FAILED, None, None])),
    min_size=1, max_size=60)
policies = st.builds(Retention, keep_last=st.integers(1, 5), daily=st.integers(0, 7), weekly=st.integers(0, 4),
                     monthly=st.integers(0, 6))


def expected_keep(backups: list[tuple[str, datetime, object]], policy: Retention) -> set[datetime]:
    """The oracle, written from the policy's words rather than from the planner: ``backups`` are one
    database's complete backups as (verdict, time, _). Returns the times that must be kept, exactly."""
    def goodness(b):  # verified beats unknown; then newer beats older
        return (b[0] == "passed", b[1])

    times_newest_first = sorted(backups, key=lambda b: b[1], reverse=True)
    keep = {b[1] for b in [b for b in times_newest_first if b[0] != "failed"][:policy.keep_last]}
    local = [(b, b[1].astimezone(TZ)) for b in backups if b[0] != "failed"]  # failed ones never hold a slot
    for count, period in ((policy.daily, lambda t: (t.year, t.month, t.day)),
                          (policy.weekly, lambda t: tuple(t.isocalendar()[:2])),
                          (policy.monthly, lambda t: (t.year, t.month))):
        slots: dict = {}
        for b, t in local:
            slots.setdefault(period(t), []).append(b)
        for slot in sorted(slots)[::-1][:count]:
            keep.add(max(slots[slot], key=goodness)[1])
    verified = [b for b in backups if b[0] == "passed"]
    unknown = [b for b in backups if b[0] is None]
    keep.add(max(verified or unknown or backups, key=lambda b: b[1])[1])
    return keep


@settings(max_examples=300, deadline=None)
@given(histories, policies)
def test_retention_matches_the_policy_exactly(history, policy):
    entries, verdicts = {}, {}
    for ten_minutes_ago, complete, db, verdict in history:
        e = entry(NOW - timedelta(minutes=10 * ten_minutes_ago), complete, db)
        entries[(db, e.backup_id)] = e
        verdicts[(db, e.backup_id)] = verdict if complete else None
    entries = list(entries.values())
    result = plan(entries, policy, now=NOW, tz=TZ, region="r",
                  verdict=lambda e: verdicts[(e.database, e.backup_id)])
    deleted = {(e.database, e.backup_id) for e in result.delete + result.delete_incomplete}
    kept = set(result.keep)
    assert not kept & deleted
    for db in {e.database for e in entries}:
        complete = [e for e in entries if e.database == db and e.complete]
        if not complete:
            continue
        words = {Outcome.PASSED: "passed", Outcome.FAILED: "failed", None: None}
        want = expected_keep([(words[verdicts[(db, e.backup_id)]], e.taken_at, e) for e in complete], policy)
        assert {e.taken_at for e in complete if (db, e.backup_id) in kept} == want
        assert {e.taken_at for e in complete if (db, e.backup_id) in deleted} == {e.taken_at for e in complete} - want
        # The two promises that matter most, stated on their own:
        good = [e for e in complete if verdicts[(db, e.backup_id)] is not Outcome.FAILED]
        if good:
            best = max(good, key=lambda e: (verdicts[(db, e.backup_id)] is Outcome.PASSED, e.backup_id))
            assert (db, best.backup_id) in kept  # the copy a restore would use is never deleted
        failed_kept_as_last = [r for (d, _b), rs in result.keep.items() if d == db for r in rs if r == "keep_last"]
        assert len(failed_kept_as_last) == min(policy.keep_last, len(good))
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
