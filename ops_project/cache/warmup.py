"""One warm-up, as the asset and the CLI both run it: Redis (when its URL is set), then the CDN (when
``cache.http.base_url`` is set), and the verdict: what makes the warm-up incomplete."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from ops_project.cache.config import CacheConfig


def http_list(db_path: str | Path, settings: CacheConfig, start: date) -> list[str]:
    """The busiest tenants' availability URLs for the warmed days, then the access log's most requested pages
    (the configured ones and the sitemap's are added by the HTTP warmer)."""
    from ops_project.cache.warm_list import access_log_top, busiest
    from ops_project.cache.warm_redis import read_only

    con = read_only(db_path)
    try:
        days = [start + timedelta(days=i) for i in range(settings.availability_days)]
        urls = busiest(con, settings.http.busiest, days)
    finally:
        con.close()
    if settings.http.access_log:
        urls += access_log_top(settings.http.access_log, settings.http.access_log_top)
    return urls


def run(settings: CacheConfig, db_path: str | Path, start: date, *, redis_client=None, redis_why: str | None = None,
        http: bool = True) -> dict:
    """``redis_client`` None: Redis is not warmed, and ``redis_why`` says why. ``http``: warm the CDN too (when a
    base URL is configured)."""
    from ops_project.cache import http_warm, warm_redis

    out: dict = {}
    if redis_client is not None:
        out["redis"] = warm_redis.warm(db_path, redis_client, settings, start)
    else:
        out["redis"] = {"not_run": redis_why or "not asked"}
    if http and settings.http.base_url:
        out["http"] = http_warm.warm(settings.http, http_list(db_path, settings, start))
    else:
        out["http"] = None if not http else {"not_run": "cache.http.base_url is not set: no CDN to warm"}
    return out


def problems(report: dict, min_coverage: float) -> list[str]:
    """Why the warm-up is not a success (empty: it is)."""
    found = []
    r, h = report.get("redis") or {}, report.get("http") or {}
    if "not_run" in r and (not h or "not_run" in h):
        found.append(f"nothing was warmed: Redis {r['not_run']}; HTTP "
                     f"{h.get('not_run', 'not asked') if h else 'not asked'}")
    if r.get("failed"):
        found.append(f"{r['failed']} of {r['requested']} Redis keys failed: {'; '.join(r['errors'][:3])}")
    if r.get("evictions"):
        found.append(r["evictions"])
    if h and "coverage" in h and h["coverage"] < min_coverage:
        missed = ", ".join((h["missed"] + h["configuration_errors"])[:10]) or ", ".join(h["errors"][:5])
        found.append(f"CDN coverage {h['coverage']:.1%} is under cache.min_coverage {min_coverage:.0%}: "
                     f"{h['hits']} HITs; missed or not cached: {missed}")
    return found
