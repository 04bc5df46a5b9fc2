"""The release baseline: "the last good release before this tag", a plain function over recorded verdicts."""

from __future__ import annotations

import json

from ops_project.releases.baseline import ReleaseOutcome, last_good_release


def outcome(tag: str, passed: bool, p95: dict | None = None) -> ReleaseOutcome:
    return ReleaseOutcome(tag, passed, p95 if p95 is not None else ({"/health": 3.0} if passed else None))


def test_the_last_good_release_below_the_tag_in_version_order():
    history = [outcome("v1.10.0", True), outcome("v1.2.1", False), outcome("v1.2.0", True, {"/x": 9.0}),
               outcome("v1.1.0", True)]  # newest first
    assert last_good_release(history, "v1.3.0") == ("v1.2.0", {"/x": 9.0})  # v1.10.0 is newer: never the baseline
    assert last_good_release(history, "v1.11.0") == ("v1.10.0", {"/health": 3.0})  # 10 > 2 as numbers
    assert last_good_release(history, "v1.2.1") == ("v1.2.0", {"/x": 9.0})  # itself and failed ones skipped
    assert last_good_release(history, "v1.0.0") is None
    assert last_good_release([], "v1.0.0") is None
    # Validated again, newest verdict first: v1.2.0 failed its latest validation, so v1.1.0 is the baseline.
    assert last_good_release([outcome("v1.2.0", False), *history[2:]], "v1.3.0")[0] == "v1.1.0"
    # A passing record without p95 figures cannot be compared with: the next one down is used.
    assert last_good_release([ReleaseOutcome("v2.0.0", True, None), outcome("v1.9.0", True)], "v2.1.0")[0] == "v1.9.0"


def test_outcome_from_recorded_metadata():
    ok = ReleaseOutcome.from_metadata("v1.0.0", {"verdict": "passed", "p95_ms_json": json.dumps({"/h": 1.5})})
    assert ok == ReleaseOutcome("v1.0.0", True, {"/h": 1.5})
    assert ReleaseOutcome.from_metadata("v1", {"verdict": "failed", "p95_ms_json": "{}"}).passed is False
    broken = ReleaseOutcome.from_metadata("v1", {"verdict": "passed", "p95_ms_json": "not json"})
    assert broken.passed and broken.p95_ms is None  # unreadable figures are never a baseline
    assert ReleaseOutcome.from_metadata("v1", {"verdict": "passed", "p95_ms_json": "[1, 2]"}).p95_ms is None
