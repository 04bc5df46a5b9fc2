"""The baseline a release is compared with (p95 regression) and rolled back to: the last good release.

History comes from wherever verdicts are kept (Dagster's materialisations of ``deploy_validation``);
this module only decides, so the rule is testable without a Dagster instance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from ops_project.releases.tags import version_key


@dataclass(frozen=True)
class ReleaseOutcome:
    """One recorded validation: the tag, whether it passed, and its p95 per endpoint (ms)."""

    tag: str
    passed: bool
    p95_ms: dict[str, float] | None = None
    samples_ms: dict[str, list[float]] | None = None  # latency samples per endpoint (recorded since samples are kept)

    @classmethod
    def from_metadata(cls, tag: str, metadata: dict) -> ReleaseOutcome:
        """From the values ``deploy_validation`` records (``verdict``, ``p95_ms_json``, ``latency_samples_json``);
        anything unreadable is None."""
        def load(key: str) -> dict | None:
            try:
                value = json.loads(metadata[key]) if key in metadata else None
            except (TypeError, ValueError):
                return None
            return value if isinstance(value, dict) else None

        samples = load("latency_samples_json")
        if samples is not None and not all(isinstance(v, list) and all(isinstance(x, int | float) for x in v)
                                           for v in samples.values()):
            samples = None
        return cls(tag, metadata.get("verdict") == "passed", load("p95_ms_json"), samples)


def last_good_outcome(history: Iterable[ReleaseOutcome], current: str) -> ReleaseOutcome | None:
    """Like ``last_good_release``, the whole recorded outcome (with its latency samples, when kept)."""
    latest: dict[str, ReleaseOutcome] = {}
    for outcome in history:
        latest.setdefault(outcome.tag, outcome)
    below = [o for o in latest.values() if o.passed and o.p95_ms is not None
             and version_key(o.tag) < version_key(current)]
    return max(below, key=lambda o: version_key(o.tag), default=None)


def last_good_release(history: Iterable[ReleaseOutcome], current: str) -> tuple[str, dict[str, float]] | None:
    """The last good release before ``current``: of the releases that passed (with p95 figures), the one
    that sorts highest below ``current`` in version order, never a newer one (re-validating v1.0.2 after
    v1.0.3 shipped must compare with, and roll back to, v1.0.1). ``history`` is newest first; a release
    validated more than once counts by its newest verdict."""
    best = last_good_outcome(history, current)
    return (best.tag, best.p95_ms) if best else None
