"""The ``capacity`` section (README, "Configuration"): horizons, limits per resource, prices per region."""

from __future__ import annotations

from pydantic import ByteSize, Field, field_validator

from ops_project.common.config import Strict, five_field_cron


class ResourceLimit(Strict):
    bytes: ByteSize | None = None  # "10GB" (10^9) or "10GiB" (2^30): the volume or plan the database lives on


class RegionPrice(Strict):
    price_gb_month: float = Field(0.0, ge=0)  # per GiB-month stored (the unit S3-style providers bill as "GB")
    price_per_1000_put: float = Field(0.0, ge=0)  # per 1,000 PUT/COPY/POST/LIST requests, where charged
    quota_bytes: ByteSize | None = None  # the bucket's or volume's quota, if any


class CapacityConfig(Strict):
    horizon_days: int = Field(90, ge=7, le=3650)
    alert_days: int = Field(30, ge=1, le=3650)  # 80 % of a limit within this many days fails the check
    history_days: int = Field(180, ge=7, le=3650)  # how far back live samples are read
    limits: dict[str, ResourceLimit] = {}  # by database name
    regions: dict[str, RegionPrice] = {}  # by region name
    cron: str = "0 7 * * 1"  # the weekly report (and its partitions), configured time zone
    sample_cron: str = "0 * * * *"  # live measurements between reports (one small file each)
    currency: str = "USD"

    @field_validator("cron", "sample_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return five_field_cron(value)
