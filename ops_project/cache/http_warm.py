"""Warm the CDN: request every URL of the warm list through ``cache.http.base_url`` (the CDN in front of the
origin), once per configured variant of headers, then request them all again and read what the CDN says.

- Bounded concurrency (``http.concurrency``); a 429 or 503 halves it (never below 1) and the request is
  retried after ``Retry-After`` (seconds or an HTTP date, at most 60 s), up to ``http.retries`` times.
- An availability URL must answer JSON: an HTML page (an error page, a login wall) is a failure, not a warm.
- The verification pass reads ``CF-Cache-Status``, ``X-Cache-Status``, ``X-Cache`` or ``Age``. Coverage is
  the share of warmed URLs that now answer HIT. ``DYNAMIC`` or ``BYPASS`` (the CDN does not cache them) and
  no cache header at all are configuration errors, reported apart from misses.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ops_project.cache.config import HttpWarmConfig
from ops_project.cache.redis_client import CacheError

RETRY_AFTER_CAP = 60.0
CACHE_HEADERS = ("cf-cache-status", "x-cache-status", "x-cache")
NOT_CACHED = ("DYNAMIC", "BYPASS")
MAX_ERRORS = 10


def cache_status(headers) -> str:
    """HIT, MISS (or EXPIRED, STALE …), DYNAMIC/BYPASS, or NONE when the answer says nothing about a cache."""
    for name in CACHE_HEADERS:
        value = headers.get(name)
        if value:
            value = value.upper()
            if "HIT" in value:
                return "HIT"
            return next((v for v in NOT_CACHED if v in value), value.split(",")[0].split()[0])
    age = headers.get("age")
    if age is not None and age.strip().isdigit():
        return "HIT" if int(age) > 0 else "MISS"
    return "NONE"


def retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return min(RETRY_AFTER_CAP, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return min(RETRY_AFTER_CAP, max(0.0, (when - datetime.now(UTC)).total_seconds()))


class Limiter:
    """At most ``limit`` requests at once; ``halve`` after a 429/503 (additive increase back on successes)."""

    def __init__(self, limit: int):
        self.limit, self.ceiling, self.active = limit, limit, 0
        self.lowest = limit
        self._cond = asyncio.Condition()
        self._ok = 0

    async def __aenter__(self):
        async with self._cond:
            await self._cond.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def __aexit__(self, *exc):
        async with self._cond:
            self.active -= 1
            self._cond.notify_all()

    async def halve(self):
        async with self._cond:
            self.limit = max(1, self.limit // 2)
            self.lowest = min(self.lowest, self.limit)
            self._ok = 0

    async def succeeded(self):
        async with self._cond:
            self._ok += 1
            if self.limit < self.ceiling and self._ok >= 10 * self.limit:
                self.limit += 1
                self._ok = 0
                self._cond.notify_all()


@dataclass
class Pass:
    ok: list[tuple[str, dict, float, str]] = field(default_factory=list)  # url, variant, seconds, cache status
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    backoffs: int = 0


async def _one(client, limiter: Limiter, settings: HttpWarmConfig, url: str, variant: dict, out: Pass) -> None:
    import httpx

    for attempt in range(settings.retries + 1):
        try:
            async with limiter:
                began = time.monotonic()
                answer = await client.get(url, headers=variant)
                seconds = time.monotonic() - began
        except httpx.HTTPError as exc:
            if attempt < settings.retries:
                await asyncio.sleep(min(RETRY_AFTER_CAP, 0.5 * 2 ** attempt))
                continue
            _fail(out, url, f"{type(exc).__name__} after {settings.retries + 1} tries")
            return
        if answer.status_code in (429, 503) and attempt < settings.retries:
            out.backoffs += 1
            await limiter.halve()
            await asyncio.sleep(retry_after(answer.headers.get("retry-after"), 1.0 * 2 ** attempt))
            continue
        if answer.status_code >= 400:
            _fail(out, url, f"HTTP {answer.status_code}")
            return
        kind = answer.headers.get("content-type", "")
        if "/availability" in url and "json" not in kind:
            _fail(out, url, f"answered {kind or 'no content type'} where JSON was expected "
                            f"({answer.text[:60].strip()!r}…): an error page, not availability")
            return
        await limiter.succeeded()
        out.ok.append((url, variant, seconds, cache_status(answer.headers)))
        return


def _fail(out: Pass, url: str, why: str) -> None:
    out.failed.append(url)
    if len(out.errors) < MAX_ERRORS:
        out.errors.append(f"{url}: {why}")


async def _pass(client, settings: HttpWarmConfig, jobs: list[tuple[str, dict]]) -> tuple[Pass, Limiter]:
    limiter, out = Limiter(settings.concurrency), Pass()
    await asyncio.gather(*(_one(client, limiter, settings, url, variant, out) for url, variant in jobs))
    return out, limiter


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, -(-95 * len(ordered) // 100) - 1)] * 1000, 2)


async def fetch(client, url: str) -> bytes:
    import httpx

    try:
        answer = await client.get(url)
    except httpx.HTTPError as exc:
        raise CacheError(f"sitemap {url}: {type(exc).__name__}") from None
    if answer.status_code != 200:
        raise CacheError(f"sitemap {url} answered HTTP {answer.status_code}")
    return answer.content


async def sitemap_paths(client, settings: HttpWarmConfig) -> list[str]:
    """Every page of the configured sitemap (following an index), as paths under the base URL."""
    from ops_project.cache.warm_list import MAX_SITEMAPS, parse_sitemap, same_site

    if not settings.sitemap:
        return []
    todo, pages, seen = [settings.sitemap], [], 0
    while todo and seen < MAX_SITEMAPS:
        url = todo.pop(0)
        seen += 1
        found, children = parse_sitemap(await fetch(client, url), url)
        pages += found
        # an index only leads to sitemaps on the configured sitemap's own site: never a fetch elsewhere
        todo += [c for c in children if same_site(c, settings.sitemap) is not None]
    return [p for p in (same_site(u, settings.base_url) for u in pages) if p]


def warm(settings: HttpWarmConfig, urls: list[str]) -> dict:
    """Warm ``urls`` (paths under ``settings.base_url``; the sitemap's are added), verify, and report."""
    return asyncio.run(_warm(settings, urls))


async def _warm(settings: HttpWarmConfig, urls: list[str]) -> dict:
    import httpx

    from ops_project.cache.warm_list import dedupe, same_site

    if not settings.base_url:
        raise CacheError("cache.http.base_url is not set: there is no CDN to warm")
    began = time.monotonic()
    limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
    async with httpx.AsyncClient(base_url=settings.base_url, timeout=settings.timeout_seconds, limits=limits,
                                 follow_redirects=False) as client:
        configured = [p for p in (same_site(u, settings.base_url) for u in settings.urls) if p]
        listed, dropped = dedupe([*urls, *configured, *await sitemap_paths(client, settings)], settings.max_urls)
        jobs = [(u, v) for u in listed for v in settings.variants]
        first, limiter = await _pass(client, settings, jobs)
        warmed = [(u, v) for u, v, _s, _c in first.ok]
        check, _ = await _pass(client, settings, warmed)
    seconds = time.monotonic() - began
    hits = [u for u, _v, _s, c in check.ok if c == "HIT"]
    not_cached = sorted({f"{u} ({c})" for u, _v, _s, c in check.ok if c in NOT_CACHED or c == "NONE"})
    missed = sorted({u for u, _v, _s, c in check.ok if c not in ("HIT", *NOT_CACHED, "NONE")})
    verified = len(check.ok)
    return {
        "requested": len(jobs), "warmed": len(first.ok), "skipped": dropped, "failed": len(first.failed),
        "errors": first.errors + [f"verification: {e}" for e in check.errors][: MAX_ERRORS],
        "seconds": round(seconds, 3), "requests_per_second": round(2 * len(jobs) / seconds, 1) if seconds else None,
        "coverage": round(len(hits) / verified, 4) if verified else 0.0, "hits": len(hits),
        "missed": missed[:50], "misses": len(missed),
        "configuration_errors": not_cached[:50], "not_cached": len(not_cached),
        "backoffs": first.backoffs + check.backoffs, "lowest_concurrency": limiter.lowest,
        "p95_ms_cold": p95([s for u, _v, s, _c in first.ok if "/availability" in u]),
        "p95_ms_warm": p95([s for u, _v, s, _c in check.ok if "/availability" in u]),
    }
