"""The ``cache`` section (README, "Warming the cache"): where Redis is, the key scheme's prefix, what to warm."""

from __future__ import annotations

from pydantic import Field, model_validator

from ops_project.common.config import Strict


class HttpWarmConfig(Strict):
    base_url: str | None = None  # the CDN in front of the origin; None: no HTTP warming
    concurrency: int = Field(4, ge=1, le=256)
    urls: list[str] = []  # paths (or full URLs under base_url) to warm besides the busiest availability
    sitemap: str | None = None  # a sitemap or sitemap index URL (.xml or .xml.gz)
    timeout_seconds: float = Field(10, gt=0)
    busiest: int = Field(20, ge=0, le=10_000)  # tenant × service pairs with the most bookings in 30 days
    variants: list[dict[str, str]] = [{}]  # header sets each URL is warmed with (Accept-Language, device …)
    retries: int = Field(3, ge=0, le=10)  # per URL, on 429/503 (after halving the concurrency) and timeouts
    max_urls: int = Field(5000, ge=1)
    access_log: str | None = None  # an access log (combined format, plain or .gz): its most requested pages too
    access_log_top: int = Field(100, ge=1, le=100_000)


class CacheConfig(Strict):
    redis_url_env: str | None = "OPS_REDIS_URL"  # redis://[:password@]host:6379/0 (the URL may hold a password)
    key_prefix: str = "booking:"
    availability_days: int = Field(14, ge=1, le=366)
    ttl_seconds: int = Field(3600, ge=1)
    ttl_jitter: float = Field(0.1, ge=0, lt=1)  # TTLs spread over [ttl × (1 − jitter), ttl]
    source: str | None = None  # the database availability is computed from (default: the first SQLite one)
    http: HttpWarmConfig = HttpWarmConfig()
    min_coverage: float = Field(0.95, ge=0, le=1)
    batch: int = Field(1000, ge=1, le=100_000)  # commands per round trip to Redis
    cron: str = "30 5 * * *"  # the morning warm-up before the booking peak (configured time zone)

    @model_validator(mode="after")
    def _spread(self) -> CacheConfig:
        if int(self.ttl_seconds * (1 - self.ttl_jitter)) < 1:
            raise ValueError("ttl_seconds × (1 − ttl_jitter) is under a second: keys would never be stored")
        return self
