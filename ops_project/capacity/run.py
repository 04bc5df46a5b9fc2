"""One capacity run: measure what is live (stored as the next point of every series), then the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ops_project.capacity.history import store_measurement
from ops_project.capacity.measure import measure
from ops_project.capacity.report import build_report, store_report
from ops_project.common.errors import OpsError
from ops_project.config import OpsConfig


class NothingMeasuredError(OpsError):
    """Not one resource could be measured or read from history: there is no report to trust."""


@dataclass(frozen=True)
class Sources:
    """How to reach what is measured: a region's store by name, a database's URL (None for SQLite; a demo
    database is generated first), a Redis client (None: no Redis configured)."""

    store_for: Callable[[str], object]
    url_for: Callable[[object], str | None]
    redis_for: Callable[[], object | None] | None


def sample(cfg: OpsConfig, primary_store, sources: Sources, *, now: datetime) -> tuple[dict, str | None]:
    """Measure everything and append the measurement to the primary region; (measurement, its key or None).
    A measurement that cannot be stored is still returned, with that named under ``missing``."""
    doc = measure(cfg, store_for=sources.store_for, url_for=sources.url_for, redis_for=sources.redis_for, now=now)
    if not doc["samples"]:
        return doc, None
    try:
        return doc, store_measurement(primary_store, doc)
    except Exception as exc:  # noqa: BLE001 - the report still comes out; the lost point is named
        doc["missing"].append({"what": f"storing this measurement in {cfg.primary.name}",
                               "why": f"{type(exc).__name__}: {exc}"})
        return doc, None


def report(cfg: OpsConfig, primary_store, *, as_of: datetime, week: str, measured: dict | None,
           log: Callable[[str], None] = lambda _m: None) -> tuple[dict, dict[str, bytes], str]:
    """Build and store the week's report; NothingMeasuredError when not one resource has a single point."""
    rep, images = build_report(cfg, primary_store, as_of=as_of, week=week, measured=measured)
    if not rep["resources"]:
        named = "; ".join(f"{m['what']}: {m['why']}" for m in rep["missing"]) or "no backups and no measurements"
        raise NothingMeasuredError(f"capacity report {week}: nothing could be measured ({named})")
    key = store_report(primary_store, rep, images)
    for m in rep["missing"]:
        log(f"not measured: {m['what']}: {m['why']}")
    return rep, images, key
