"""Domain rules that used to live in the Dagster wiring, now plain functions tested without Dagster:
retention's "verified in any region", the drill report's region and per-scenario summary, the RPO table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ops_project.backups.config import Retention
from ops_project.backups.drills import DrillReport, ScenarioResult, report_region
from ops_project.backups.layout import ID_FORMAT, MANIFEST, VERIFICATION, backup_prefix, backup_time
from ops_project.backups.manifest import Manifest, TableStats
from ops_project.backups.retention import plan_region, plan_regions
from ops_project.backups.rpo import RpoStatus, rpo_table, verified_rpo
from ops_project.backups.take import reserve_id
from ops_project.config import OpsConfig
from ops_project.storage.local import LocalStore

TZ = ZoneInfo("Africa/Johannesburg")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def put_backup(store: LocalStore, at: datetime, *, verified: bool | None = None, db: str = "booking") -> str:
    bid = at.strftime(ID_FORMAT)
    prefix = backup_prefix(db, bid)
    store.put_bytes(prefix + "data.sqlite.zst", b"x")
    manifest = Manifest(database=db, engine="sqlite", backup_id=bid, partition_key=None,
                        snapshot_started_at=at.isoformat(), snapshot_finished_at=at.isoformat(),
                        source_size_bytes=1, stored_size_bytes=1, sha256_stored="0", sha256_plaintext="0",
                        data_object="data.sqlite.zst", compression={"codec": "zstd", "level": 3}, encryption=None,
                        schema_fingerprint="f", tables={"t": TableStats(1, "c")}, tool_versions={})
    store.put_bytes(prefix + MANIFEST, manifest.to_json())
    if verified is not None:
        store.put_bytes(prefix + VERIFICATION, json.dumps({"passed": verified}).encode())
    return bid


def test_a_backup_verified_in_any_region_is_kept_in_every_region(tmp_path):
    primary, dr = LocalStore("af", tmp_path / "af", create=True), LocalStore("eu", tmp_path / "eu", create=True)
    times = [NOW - timedelta(hours=h) for h in (30, 20, 10)]
    ids = [put_backup(primary, t) for t in times]
    for t, verified in zip(times, (True, False, None), strict=True):  # verified only in the DR region
        put_backup(dr, t, verified=verified)
    policy = Retention(keep_last=1, daily=0, weekly=0, monthly=0)

    plans = plan_regions([primary, dr], policy, now=NOW, tz=TZ)
    for p in plans:
        assert p.keep[("booking", ids[0])] == ["newest verified"], p.region
        assert p.keep[("booking", ids[2])] == ["keep_last"]
        assert [e.backup_id for e in p.delete] == [ids[1]]
    # On its own the primary knows of no verification: it would keep its newest complete backup instead.
    alone = plan_region(primary, policy, now=NOW, tz=TZ)
    assert ("booking", ids[0]) not in alone.keep and alone.keep[("booking", ids[2])] == ["keep_last",
                                                                                         "newest complete"]


def _cfg(regions: list[str], restore_region: str | None = None) -> OpsConfig:
    return OpsConfig.model_validate({
        "databases": [{"name": "booking", "engine": "sqlite", "path": "/tmp/x.db"}],
        "regions": [{"name": n, "kind": "local", "path": f"/tmp/{n}"} for n in regions],
        **({"restore": {"region": restore_region}} if restore_region else {})})


def test_drill_reports_go_to_the_dr_region_never_the_primary():
    assert report_region(_cfg(["af", "eu", "us"])) == "us"  # default DR region: the last
    assert report_region(_cfg(["af", "eu", "us"], restore_region="eu")) == "eu"
    assert report_region(_cfg(["af", "eu", "us"], restore_region="af")) == "us"  # restore from primary: not there
    assert report_region(_cfg(["af"])) is None


def test_drill_summary_per_scenario_is_the_worst_database():
    report = DrillReport("2026-11-22", NOW.isoformat(), 7200, 240, [
        ScenarioResult("region_loss", "booking", True, rto_seconds=3.0, rpo_minutes=50, notes=["restored"]),
        ScenarioResult("region_loss", "core", False, rto_seconds=9.5, rpo_minutes=20, notes=["RTO missed"]),
        ScenarioResult("database_loss", "booking", True, rto_seconds=1.0, rpo_minutes=5, notes=[]),
    ])
    loss = report.summary("region_loss")
    assert (loss.passed, loss.worst_rto_seconds, loss.worst_rpo_minutes) == (False, 9.5, 50)
    assert loss.description == "booking: pass (restored); core: FAIL (RTO missed)"
    assert report.summary("database_loss").passed
    nothing = report.summary("corrupt_latest")
    assert not nothing.passed and nothing.description == "no database was drilled"  # never green when unsure
    assert nothing.worst_rto_seconds is None and nothing.worst_rpo_minutes is None  # no 0 s for what did not happen
    shown = report.markdown()  # each note once, below the table, which stays narrow
    assert "| region_loss | core | - | - | 9.5 s | 20.0 min | FAIL | [2] |" in shown
    assert shown.endswith("1. restored\n2. RTO missed")
    assert "| database_loss | booking | - | - | 1.0 s | 5.0 min | pass | - |" in shown


def test_rpo_table_and_status(tmp_path):
    store = LocalStore("eu", tmp_path / "eu", create=True)
    put_backup(store, NOW - timedelta(minutes=300), verified=True)
    put_backup(store, NOW - timedelta(minutes=60), verified=False)
    status = verified_rpo([store], "booking", 240, now=NOW)
    assert (status.verified_age_minutes, status.newest_age_minutes, status.ok) == (300.0, 60.0, False)
    none = RpoStatus("core", 240, None, None, None, None, None)
    lines = rpo_table([status, none]).splitlines()
    assert lines[0] == "| database | verified backup | age (min) | newest backup | age (min) | ok |"
    assert lines[2] == (f"| booking | {status.verified_backup_id} | 300 | {status.newest_backup_id} | 60 | NO |")
    assert lines[3] == "| core | - | - | - | - | NO |"


def test_a_backup_id_being_written_is_taken(tmp_path):
    """Two backups started in the same second never share an id, even while the first one's data is in flight."""
    store = LocalStore("af", tmp_path / "af", create=True)
    first = reserve_id(store, "booking", NOW)
    writer = store.writer(backup_prefix("booking", first) + "data.sqlite.zst")  # in flight: nothing listed yet
    writer.write(b"partial")
    assert [o.key for o in store.list("backups/")] == [f"backups/booking/{first}/reserved"]  # no data listed yet
    second = reserve_id(store, "booking", NOW)
    assert first == NOW.strftime(ID_FORMAT) and second == first + "-1"
    writer.abort()
    assert reserve_id(store, "booking", NOW) == first + "-2"  # an id stays reserved until its backup releases it


def test_a_queued_backup_is_measured_from_when_it_was_asked_for():
    from ops_project.backups.windows import check_window, make_window
    from ops_project.common.errors import WindowClosedError

    end = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    window = make_window("2026-11-22-04:00", end - timedelta(hours=4), end, 60)
    late_start = end + timedelta(hours=3)  # the run waited three hours behind restore tests
    check_window(window, late_start, requested_at=end + timedelta(seconds=5))  # the tick is what counts
    with pytest.raises(WindowClosedError, match="it was asked for at") as late:
        check_window(window, late_start)  # asked for (created) now: the window is long closed
    assert late.value.skippable  # a stray request: refusing it loses nothing
    with pytest.raises(WindowClosedError):  # a creation time after the window closed is refused too
        check_window(window, late_start, requested_at=end + timedelta(hours=2))
    with pytest.raises(WindowClosedError):  # a claimed time before the window ended proves nothing
        check_window(window, late_start, requested_at=end - timedelta(hours=1))


def test_a_queue_delay_is_forgiven_for_one_window_length_only():
    from ops_project.backups.windows import check_window, make_window
    from ops_project.common.errors import WindowClosedError

    end = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    window = make_window("2026-11-22-04:00", end - timedelta(hours=4), end, 60)  # closes at 09:00
    check_window(window, end + timedelta(hours=4, minutes=59), requested_at=end)  # 09:00 + one window length
    with pytest.raises(WindowClosedError, match="MISSED") as missed:  # weeks later: not the window's data
        check_window(window, end + timedelta(days=19), requested_at=end)
    assert not missed.value.skippable  # asked for in time: the backup is lost, the run must fail
    with pytest.raises(WindowClosedError) as early:
        check_window(window, end - timedelta(minutes=5))
    assert not early.value.skippable  # not ended yet (a clock behind): fail, never a green skip


def test_window_keys_carry_their_offset_and_still_find_older_backups():
    from datetime import datetime as dt

    from assets.partitions import WINDOW_FMT
    from ops_project.backups.catalog import same_window

    key = "2026-11-22-04:00+0200"
    assert dt.strptime(key, WINDOW_FMT).utcoffset().total_seconds() == 7200
    assert same_window(key, key)
    assert same_window("2026-11-22-04:00", key)  # recorded before keys carried their offset
    assert not same_window("2026-11-22-08:00", key) and not same_window(None, key)
    assert not same_window("2026-11-22-04:00+0100", key)  # the same wall-clock time an hour apart


def test_the_fleet_rpo_reads_little_and_says_what_reading_everything_says(tmp_path):
    """``verified_rpos`` (one listing per region, newest first) against an oracle that reads every manifest and
    verification record: random fleets with verified, failed, unverified, incomplete and unreadable backups."""
    import random

    from ops_project.backups.rpo import verified_rpos

    def oracle(stores, database):  # written from the definition, not from the code under test
        complete = []
        for store in stores:
            for folder in sorted({k.rsplit("/", 1)[0] for k in (o.key for o in store.list(f"backups/{database}/"))}):
                try:
                    manifest = Manifest.from_json(store.get_bytes(folder + "/" + MANIFEST))
                except Exception:  # noqa: BLE001 - missing or unreadable: not complete
                    continue
                try:
                    passed = json.loads(store.get_bytes(folder + "/" + VERIFICATION)).get("passed") is True
                except Exception:  # noqa: BLE001 - never verified
                    passed = False
                complete.append((manifest.snapshot_started_at, manifest.backup_id, passed))
        proven = {bid for _, bid, ok in complete if ok}
        newest = max(complete, default=None)
        best = max((c for c in complete if c[1] in proven), default=None)
        return (best[1] if best else None, newest[1] if newest else None)

    rng = random.Random(20261203)
    for trial in range(25):
        stores = [LocalStore(f"r{i}", tmp_path / f"t{trial}" / f"r{i}", create=True) for i in range(2)]
        databases = [f"db{i}" for i in range(rng.randint(1, 6))]
        for db in databases:
            for _ in range(rng.randint(0, 6)):
                at = NOW - timedelta(minutes=rng.randint(1, 5000))
                for store in stores:
                    if rng.random() < 0.8:
                        bid = put_backup(store, at, db=db, verified=rng.choice([True, False, None, None]))
                        roll = rng.random()
                        if roll < 0.1:
                            store.delete(backup_prefix(db, bid) + MANIFEST)  # incomplete
                        elif roll < 0.15:
                            store.put_bytes(backup_prefix(db, bid) + MANIFEST, b"{not json")  # unreadable
        got = verified_rpos(stores, databases, 240, now=NOW)
        assert [s.database for s in got] == databases
        for status in got:
            assert (status.verified_backup_id, status.newest_backup_id) == oracle(stores, status.database), trial
            if status.verified_backup_id:
                assert status.verified_age_minutes == round(
                    (NOW - backup_time(status.verified_backup_id)).total_seconds() / 60, 1)


def test_the_fleet_verdict_names_every_database_over_its_objective():
    from ops_project.backups.rpo import fleet_verdict

    ok = RpoStatus("a", 240, "b1", None, 30.0, "b1", 30.0)
    old = RpoStatus("b", 240, "b2", None, 500.0, "b3", 20.0)
    older = RpoStatus("c", 240, "b4", None, 900.0, "b4", 900.0)
    never = RpoStatus("d", 240, None, None, None, "b5", 10.0)
    assert fleet_verdict([ok]).passed and fleet_verdict([ok]).breached == ()
    verdict = fleet_verdict([ok, old, never, older])
    assert not verdict.passed and [s.database for s in verdict.breached] == ["d", "c", "b"]  # never, then oldest
    assert verdict.message.startswith("verified RPO over its objective for 3 of 4 database(s): d: no backup")
    assert verdict.metadata() == {"databases": 4, "over_objective": 3, "never_verified": 1, "breached": "d, c, b",
                                  "worst_verified_age_minutes": 900.0}
    many = fleet_verdict([RpoStatus(f"t{i:02d}", 240, None, None, None, None, None) for i in range(13)], named=10)
    assert many.message.endswith("; and 3 more") and many.message.count("no backup has passed") == 10


def test_a_new_tenant_without_a_backup_is_within_the_objective_only_while_younger_than_it(tmp_path):
    """A tenant that joined 100 minutes ago cannot have lost more than 100 minutes of data, backup or not."""
    from ops_project.backups.rpo import fleet_verdict, verified_rpos

    store = LocalStore("eu", tmp_path / "eu", create=True)
    joined = {"new": NOW - timedelta(minutes=100), "late": NOW - timedelta(minutes=241)}
    new, late, declared = verified_rpos([store], ["new", "late", "declared"], 240, now=NOW, joined=joined)
    assert (new.ok, new.member_for_minutes) == (True, 100.0)
    assert "new tenant (100 min in the fleet)" in new.message()
    assert (late.ok, declared.ok) == (False, False)  # past the objective, or declared: never verified is a breach
    verdict = fleet_verdict([new, late, declared])
    assert [s.database for s in verdict.breached] == ["declared", "late"]
    alone = fleet_verdict([new])
    assert alone.passed and "1 new tenant(s) awaiting their first verified backup: new" in alone.message
