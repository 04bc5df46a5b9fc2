"""The point-in-time restore test's verdicts, kept next to each replica (``continuous/<database>/``).

``ops-verified.json`` holds the newest moment a passed test proved restorable; ``ops-last-test.json`` the last
test, passed or not. Litestream manages only ``generations/`` below the same folder. The verified RPO reads
``ops-verified.json``: a failed test never moves it forward, so a replica that stops passing ages out of its
objective like a backup that stops passing restore verification.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ops_project.common.errors import OpsError
from ops_project.continuous.litestream import replica_prefix
from ops_project.continuous.pitr import TestResult

VERIFIED = "ops-verified.json"
LAST_TEST = "ops-last-test.json"


def _proof(proof) -> dict | None:
    if proof is None:
        return None
    return {"target": proof.target.isoformat(), "passed": proof.passed, "gap_seconds": proof.gap_seconds,
            "restore_seconds": round(proof.restore_seconds, 3), "markers": proof.restored_markers,
            "checks": [{"name": c.name, "passed": c.passed, "text": c.text} for c in proof.checks]}


def record(store, result: TestResult, *, tested_at: datetime) -> None:
    doc = {"database": result.database, "region": result.region, "tested_at": tested_at.isoformat(),
           "passed": result.passed, "note": result.note, "moment": _proof(result.moment),
           "newest": _proof(result.newest)}
    store.put_bytes(f"{replica_prefix(result.database)}/{LAST_TEST}", json.dumps(doc, indent=1).encode())
    if result.verified_to is not None:
        doc["verified_to"] = result.verified_to.isoformat()
        store.put_bytes(f"{replica_prefix(result.database)}/{VERIFIED}", json.dumps(doc, indent=1).encode())


def verified_to(stores, databases: list[str]) -> dict[str, datetime]:
    """The newest moment proved restorable for each database, over every region (a region that cannot be read
    adds nothing: the snapshot RPO still stands)."""
    out: dict[str, datetime] = {}
    for store in stores:
        for name in databases:
            try:
                if not store.exists(f"{replica_prefix(name)}/{VERIFIED}"):
                    continue
                doc = json.loads(store.get_bytes(f"{replica_prefix(name)}/{VERIFIED}"))
                at = datetime.fromisoformat(doc["verified_to"]).astimezone(UTC)
            except (OpsError, OSError, ValueError, KeyError):
                continue
            if name not in out or at > out[name]:
                out[name] = at
    return out


def not_due(cfg, db, store, now: datetime) -> str | None:
    """Why ``db`` is not tested in this run (None: it is). A PostgreSQL cluster is restored whole, twice: at most
    every ``continuous.postgres_test_every_hours`` once its last test passed; a failed one at every run."""
    every = cfg.continuous.postgres_test_every_hours
    if db.engine != "postgres" or every == 0:
        return None
    last = last_passed(store, db.name)
    if last is None or (now - last).total_seconds() >= every * 3600:
        return None
    return (f"passed at {last:%Y-%m-%dT%H:%M:%SZ}; a PostgreSQL cluster is tested again after {every} h "
            f"(continuous.postgres_test_every_hours)")


def last_passed(store, database: str) -> datetime | None:
    """When the last point-in-time restore test of ``database`` from this region ran, if it passed (None: never
    tested, failed, or unreadable)."""
    try:
        if not store.exists(f"{replica_prefix(database)}/{LAST_TEST}"):
            return None
        doc = json.loads(store.get_bytes(f"{replica_prefix(database)}/{LAST_TEST}"))
        return datetime.fromisoformat(doc["tested_at"]).astimezone(UTC) if doc.get("passed") is True else None
    except (OpsError, OSError, ValueError, KeyError):
        return None

