"""The baseline a release is compared with (p95 regression) and rolled back to: the last good release.

History comes from wherever verdicts are kept (Dagster's materialisations of ``deploy_validation``);
this module only decides, so the rule is testable without a Dagster instance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ReleaseOutcome:
    """One recorded validation: the tag, whether it passed, and its p95 per endpoint (ms)."""

    tag: str
    passed: bool
    p95_ms: dict[str, float] | None = None

    @classmethod
    def from_metadata(cls, tag: str, metadata: dict) -> ReleaseOutcome:
        """From the values ``deploy_validation`` records (``verdict``, ``p95_ms_json``); unreadable p95 is None."""
        try:
            p95 = json.loads(metadata["p95_ms_json"]) if "p95_ms_json" in metadata else None
        except (TypeError, ValueError):
            p95 = None
        return cls(tag, metadata.get("verdict") == "passed", p95 if isinstance(p95, dict) else None)


def last_good_release(history: Iterable[ReleaseOutcome], current: str) -> tuple[str, dict[str, float]] | None:
    """The newest other release (``history`` is newest first) that passed and has p95 figures."""
    for outcome in history:
        if outcome.tag != current and outcome.passed and outcome.p95_ms is not None:
            return outcome.tag, outcome.p95_ms
    return None
