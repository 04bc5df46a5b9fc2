"""The ``releases`` section: which repository's tags are releases, and what deploy validation checks."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ops_project.common.config import Strict


class ReleaseTarget(Strict):
    base_url: str = "http://127.0.0.1:8080"
    health_paths: list[str] = ["/health"]
    latency_budget_ms: int = Field(200, gt=0)
    requests_per_endpoint: int = Field(50, ge=1, le=10000)  # measured samples per endpoint, after the warm-up
    warmup_requests: int = Field(5, ge=0, le=1000)  # per endpoint, not measured (cold caches, connections)
    max_error_rate: float = Field(0.01, ge=0, le=1)
    p95_regression_factor: float = Field(1.5, gt=1)
    regression_floor_ms: float = Field(20, ge=0)  # a p95 less than this much worse is never a regression
    regression_alpha: float = Field(0.01, gt=0, lt=1)  # significance of the one-sided Mann-Whitney U test
    rollout_timeout_seconds: float = Field(60, ge=0)
    request_timeout_seconds: float = Field(5, gt=0)
    smoke_tenant: str = "tenant-0001"


class ReleasesConfig(Strict):
    repo: str
    tag_pattern: str = r"^v\d+\.\d+\.\d+$"
    target: ReleaseTarget = ReleaseTarget()
    rollback_command: list[str] | None = None
    rollback_env: list[str] = []  # variables the rollback command receives (beside PATH, HOME, LANG)
    rollback_timeout_seconds: float = Field(600, gt=0)
    run_existing_on_first_tick: bool = False
    minimum_interval_seconds: int = Field(60, ge=5)

    @field_validator("tag_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a valid regular expression ({exc})") from None
        return value
