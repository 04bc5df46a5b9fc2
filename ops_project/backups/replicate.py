"""Cross-region replication: copy a complete backup, verify it at the destination, manifest last.

Re-running is idempotent: a replica already in place is re-verified (its stored sha256 re-read)
rather than copied again; a replica whose bytes no longer match is reported and re-copied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from ops_project.backups.catalog import read_manifest
from ops_project.backups.layout import MANIFEST, backup_prefix
from ops_project.backups.manifest import Manifest
from ops_project.common.errors import IntegrityError
from ops_project.common.streams import HashingReader, copy, sha256_of
from ops_project.storage import ObjectStore


@dataclass(frozen=True)
class ReplicaResult:
    backup_id: str
    source_region: str
    region: str
    copied: bool
    repaired: bool
    bytes: int
    copy_seconds: float
    verify_seconds: float
    lag_seconds: float  # from the snapshot's point in time to the verified replica
    problem: str | None = None


def stored_sha256(store: ObjectStore, key: str) -> tuple[str, int]:
    """(sha256, size) of the object at ``key``, re-read from the store."""
    with store.reader(key) as fh:
        return sha256_of(fh)


def verify_stored(store: ObjectStore, manifest: Manifest) -> str | None:
    """None when the stored object matches its manifest, else what is wrong."""
    key = backup_prefix(manifest.database, manifest.backup_id) + manifest.data_object
    if not store.exists(key):
        return f"{store.describe(key)} is missing"
    digest, size = stored_sha256(store, key)
    if digest != manifest.sha256_stored or size != manifest.stored_size_bytes:
        return (f"{store.describe(key)}: sha256 {digest} ({size} bytes), manifest says "
                f"{manifest.sha256_stored} ({manifest.stored_size_bytes} bytes)")
    return None


def _copy(src: ObjectStore, dst: ObjectStore, key: str, manifest: Manifest) -> int:
    writer = dst.writer(key, size_hint=manifest.stored_size_bytes)
    try:
        with src.reader(key) as fh:
            source = HashingReader(fh)
            size = copy(source, writer)
        if source.hexdigest != manifest.sha256_stored:
            raise IntegrityError(
                f"source {src.describe(key)}: sha256 {source.hexdigest}, manifest says {manifest.sha256_stored}; "
                f"the primary copy is corrupt, so nothing was replicated to region {dst.region}")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return size


def replicate(src: ObjectStore, dst: ObjectStore, database: str, backup_id: str) -> ReplicaResult:
    """Copy one complete backup from ``src`` to ``dst`` and verify it there."""
    manifest = read_manifest(src, database, backup_id)
    prefix = backup_prefix(database, backup_id)
    key = prefix + manifest.data_object
    copied = repaired = False
    problem = None
    copy_s = 0.0
    if dst.exists(prefix + MANIFEST):
        t = time.perf_counter()
        problem = verify_stored(dst, manifest)
        if problem is None:
            verify_s = time.perf_counter() - t
            return ReplicaResult(backup_id, src.region, dst.region, False, False, manifest.stored_size_bytes,
                                 0.0, verify_s, _lag(manifest), None)
        # Unmark it first: a replica that failed verification must never look complete.
        dst.delete(prefix + MANIFEST)
        repaired = True
    dst.check()
    t = time.perf_counter()
    size = _copy(src, dst, key, manifest)
    copy_s, copied = time.perf_counter() - t, True
    t = time.perf_counter()
    after = verify_stored(dst, manifest)
    verify_s = time.perf_counter() - t
    if after is not None:
        dst.delete(key)
        raise IntegrityError(f"replica in region {dst.region} failed verification after copying: {after}")
    dst.put_bytes(prefix + MANIFEST, manifest.to_json())
    return ReplicaResult(backup_id, src.region, dst.region, copied, repaired, size, copy_s, verify_s,
                         _lag(manifest), problem)


def _lag(manifest: Manifest) -> float:
    point = datetime.fromisoformat(manifest.snapshot_finished_at)
    return round((datetime.now(UTC) - point).total_seconds(), 3)
