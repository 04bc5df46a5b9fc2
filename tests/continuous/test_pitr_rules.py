"""The proof of a restore to a moment, against files built here: the oracle is the list of markers written,
not the code under test."""

from __future__ import annotations

import random
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

from ops_project.continuous.markers import read_markers, write_marker
from ops_project.continuous.pitr import pick_moment, prove

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _db(path, moments):
    sqlite3.connect(path).close()
    for at in moments:
        write_marker(path, at, keep_hours=10_000)
    return path


def _checks(proof):
    return {c.name: c.passed for c in proof.checks}


def test_a_faithful_restore_passes_and_reports_how_close_it_got(tmp_path):
    live = [T0 + timedelta(seconds=60 * i) for i in range(30)]
    target = T0 + timedelta(minutes=10, seconds=30)
    restored = _db(tmp_path / "r.db", [m for m in live if m <= target])
    proof = prove(restored, live, target, slack_seconds=3, database="b", region="r", restore_seconds=0.1,
                  marker_seconds=60)
    assert proof.passed, proof.checks
    assert proof.gap_seconds == 30.0 and proof.restored_markers == 11


def test_each_way_of_being_wrong_fails_its_own_check(tmp_path):
    live = [T0 + timedelta(seconds=60 * i) for i in range(30)]
    target = T0 + timedelta(minutes=10, seconds=30)
    too_far = _db(tmp_path / "far.db", [m for m in live if m <= target + timedelta(minutes=2)])
    assert _checks(prove(too_far, live, target, slack_seconds=3, database="b", region="r", restore_seconds=0,
                         marker_seconds=60)) == {"integrity": True, "nothing_after_the_moment": False,
                                                 "everything_before_the_moment": True, "close_to_the_moment": True}
    holed = _db(tmp_path / "holed.db", [m for m in live if m <= target and m != live[4]])
    assert not _checks(prove(holed, live, target, slack_seconds=3, database="b", region="r", restore_seconds=0,
                             marker_seconds=60))["everything_before_the_moment"]
    stale = _db(tmp_path / "stale.db", live[:3])  # an old state: close to nothing
    got = _checks(prove(stale, live, target, slack_seconds=3, database="b", region="r", restore_seconds=0,
                        marker_seconds=60))
    assert not got["everything_before_the_moment"] and not got["close_to_the_moment"]
    broken = tmp_path / "broken.db"
    shutil.copy(_db(tmp_path / "ok.db", live[:11]), broken)
    with open(broken, "r+b") as f:  # the marker table's root page (page 2), its header overwritten
        f.seek(4096)
        f.write(b"\xff" * 4096)
    got = _checks(prove(broken, live, target, slack_seconds=3, database="b", region="r", restore_seconds=0,
                        marker_seconds=60))
    assert got["integrity"] is False and got["everything_before_the_moment"] is False
    empty = _db(tmp_path / "empty.db", [])
    assert not prove(empty, [], target, slack_seconds=3, database="b", region="r", restore_seconds=0,
                     marker_seconds=60).passed  # nothing to prove the moment with is not a pass


def test_markers_are_pruned_past_their_hours_and_read_oldest_first(tmp_path):
    path = _db(tmp_path / "m.db", [T0 + timedelta(hours=h) for h in (0, 5, 1)])
    assert read_markers(path) == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=5)]
    write_marker(path, T0 + timedelta(hours=6), keep_hours=2)
    assert read_markers(path) == [T0 + timedelta(hours=5), T0 + timedelta(hours=6)]


def test_a_marker_is_never_written_into_a_database_that_is_not_there(tmp_path):
    import pytest

    from ops_project.common.errors import OpsError

    with pytest.raises(OpsError, match="is the database there"):
        write_marker(tmp_path / "gone.db", T0, keep_hours=1)
    assert not (tmp_path / "gone.db").exists()


def test_the_moment_is_in_the_last_day_and_provable():
    rng = random.Random(3)
    now = T0 + timedelta(days=3)
    for _ in range(200):
        at = pick_moment(rng, earliest=T0, now=now, lookback_hours=24, slack_seconds=3, marker_seconds=60)
        assert now - timedelta(hours=24) <= at <= now - timedelta(seconds=6)
    young = now - timedelta(seconds=30)
    assert pick_moment(rng, earliest=young, now=now, lookback_hours=24, slack_seconds=3, marker_seconds=60) is None
