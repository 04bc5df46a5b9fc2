"""The time series a capacity report reads: backup manifests (every database's size and row counts since
its first backup) and the live measurements stored beside the reports, one small file per run.

Layout in the primary region (append-only: a file is never rewritten):
``reports/capacity/metrics/<YYYY-MM-DD>/<HHMMSS>Z-<id>.json``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from ops_project.backups.catalog import list_backups

METRICS = "reports/capacity/metrics/"


@dataclass
class Series:
    resource: str
    label: str
    kind: str
    unit: str
    points: dict[datetime, float] = field(default_factory=dict)
    limit: float | None = None
    limit_source: str | None = None
    detail: dict = field(default_factory=dict)  # the newest measurement's
    sources: set[str] = field(default_factory=set)

    def add(self, at: datetime, value: float, source: str) -> None:
        self.points[at] = float(value)
        self.sources.add(source)

    @property
    def ordered(self) -> tuple[list[datetime], list[float]]:
        times = sorted(self.points)
        return times, [self.points[t] for t in times]


def metrics_key(at: datetime) -> str:
    return f"{METRICS}{at:%Y-%m-%d}/{at:%H%M%S}Z-{uuid.uuid4().hex[:8]}.json"


def store_measurement(store, doc: dict) -> str:
    """Append one measurement; returns its key."""
    at = datetime.fromisoformat(doc["taken_at"])
    key = metrics_key(at)
    store.put_if_absent(key, (json.dumps(doc, sort_keys=True) + "\n").encode())
    return key


def read_measurements(store, since: datetime, until: datetime) -> tuple[list[dict], list[str]]:
    """Measurements taken in [since, until], oldest first, and the problems met (an unreadable file is named
    and skipped: one bad file must not hide the rest)."""
    docs, problems = [], []
    first, last = since.date().isoformat(), until.date().isoformat()
    for info in store.list(METRICS):
        day = info.key[len(METRICS):].split("/", 1)[0]
        if not (first <= day <= last) or not info.key.endswith(".json"):
            continue
        try:
            doc = json.loads(store.get_bytes(info.key))
            at = datetime.fromisoformat(doc["taken_at"])
            samples = doc["samples"]
            if not isinstance(samples, list):
                raise ValueError("samples is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"measurement {store.describe(info.key)} is unreadable ({exc}); skipped")
            continue
        if since <= at <= until:
            docs.append(doc)
    docs.sort(key=lambda d: d["taken_at"])
    return docs, problems


def manifest_series(store, until: datetime) -> tuple[dict[str, Series], list[str], list]:
    """Growth history from the backups a region holds: each SQLite database's size (the snapshot is the file),
    each PostgreSQL database's dump size, and every table's row count; with the entries, for costs."""
    out: dict[str, Series] = {}
    problems = []
    entries = list_backups(store)
    for entry in entries:
        if entry.problem:
            problems.append(entry.problem)
        m = entry.manifest
        if m is None:
            continue
        at = datetime.fromisoformat(m.snapshot_finished_at)
        if at > until:
            continue
        if m.engine == "sqlite":
            s = out.setdefault(f"{m.database}/bytes", Series(f"{m.database}/bytes", f"{m.database} database file",
                                                             "database_bytes", "bytes"))
        else:
            s = out.setdefault(f"{m.database}/dump_bytes", Series(
                f"{m.database}/dump_bytes", f"{m.database} logical dump", "dump_bytes", "bytes"))
        s.add(at, m.source_size_bytes, "manifests")
        for table, stats in m.tables.items():
            rid = f"{m.database}/rows:{table}"
            out.setdefault(rid, Series(rid, f"{m.database} rows in {table}", "table_rows", "rows")).add(
                at, stats.rows, "manifests")
    return out, problems, entries


def merge_measurements(series: dict[str, Series], docs: list[dict]) -> dict[str, Series]:
    for doc in docs:
        at = datetime.fromisoformat(doc["taken_at"])
        for s in doc["samples"]:
            try:
                target = series.setdefault(s["resource"], Series(s["resource"], s["label"], s["kind"], s["unit"]))
                target.add(at, s["value"], "measured")
                target.limit, target.limit_source = s.get("limit"), s.get("limit_source")
                target.detail = s.get("detail") or {}
                target.label, target.kind, target.unit = s["label"], s["kind"], s["unit"]
            except (KeyError, TypeError):
                continue
    return series
