"""Which release a query regression started with: the release validated (so deployed) between the two days'
reports is the suspect; with none in between, the regression is not a release's (the same one was live on
both days)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Deployment:
    tag: str
    at: datetime  # when deploy validation recorded it (it validates what is deployed)
    passed: bool


def tie(regression: dict, deployments: list[Deployment], previous_start: datetime, day_end: datetime) -> dict:
    """``regression`` with a ``release`` entry: ``{"tag", "deployed_at", "passed", "how"}``, or ``None`` when no
    release is known at all."""
    between = [d for d in deployments if previous_start <= d.at < day_end]
    earlier = [d for d in deployments if d.at < previous_start]
    if between:
        suspect = max(between, key=lambda d: d.at)
        others = len(between) - 1
        release = {"tag": suspect.tag, "deployed_at": suspect.at.isoformat(), "passed": suspect.passed,
                   "how": "deployed between the two days" + (f" (the newest of {others + 1})" if others else "")}
    elif earlier:
        live = max(earlier, key=lambda d: d.at)
        release = {"tag": live.tag, "deployed_at": live.at.isoformat(), "passed": live.passed,
                   "how": "live on both days: no release in between, look elsewhere (data, load, plans)"}
    else:
        release = None
    return {**regression, "release": release}
