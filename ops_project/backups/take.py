"""Take a backup: consistent snapshot → zstd → [age] → sha256 → primary region, manifest last.

Used by the ``database_backup`` asset and by ``python -m ops_project backups take``. Whatever
fails, nothing is marked complete: the data upload is aborted (or removed) and the manifest,
which is what makes a backup complete, is written only after everything else succeeded.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import zstandard

from ops_project import __version__
from ops_project.backups.catalog import list_backups
from ops_project.backups.codec import StreamResult, encode
from ops_project.backups.config import BackupConfig
from ops_project.backups.encryption import recipient_fingerprint
from ops_project.backups.engines import SnapshotStats
from ops_project.backups.layout import (
    MANIFEST,
    RESERVATION,
    backup_prefix,
    data_name,
    new_backup_id,
)
from ops_project.backups.manifest import Manifest
from ops_project.backups.windows import Window, check_window
from ops_project.common.config import DatabaseConfig
from ops_project.common.errors import BackupError
from ops_project.storage import ObjectStore


def _now() -> datetime:
    return datetime.now(UTC)


def _size_hint(database: DatabaseConfig, pg_url: str | None) -> int | None:
    """An upper bound of the plaintext size (the stored object is smaller), for the multipart part size."""
    if database.engine == "sqlite":
        try:
            path = database.path.expanduser()
            return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
        except OSError:
            return None
    try:
        import psycopg

        with psycopg.connect(pg_url, connect_timeout=10) as con:
            return con.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    except Exception:  # noqa: BLE001 - only a hint; the snapshot reports real connection errors
        return None


def reserve_id(store: ObjectStore, database: str, started: datetime) -> str:
    """A new backup id for ``database``: the UTC start time, suffixed if that second is taken, and held by a
    reservation object created only if absent, so that two takers on different machines never share it
    (a listing cannot tell: S3 writes are invisible until they complete).

    Taken means a backup with objects (a finished one has released its reservation) or a reservation: a
    backup whose data is still being written holds one, so no scan of unfinished uploads is needed.
    """
    taken = {e.backup_id for e in list_backups(store, database, read_manifests=False)}
    note = json.dumps({"host": platform.node(), "pid": os.getpid(), "started": started.isoformat()}).encode()
    for _ in range(1000):
        backup_id = new_backup_id(started, taken)
        if store.put_if_absent(backup_prefix(database, backup_id) + RESERVATION, note):
            return backup_id
        taken.add(backup_id)
    raise BackupError(f"region {store.region}: could not reserve a backup id for {database} at {started}")


def _release(store: ObjectStore, database: str, backup_id: str) -> None:
    """Remove the id's reservation (best effort: a leftover one is an incomplete backup retention removes)."""
    try:
        store.delete(backup_prefix(database, backup_id) + RESERVATION)
    except Exception:  # noqa: BLE001 - the backup's own outcome is what matters
        pass


def open_snapshot(database: DatabaseConfig, settings: BackupConfig, pg_url: str | None):
    """The engine's snapshot context manager for ``database`` (nothing is read until it is entered)."""
    if database.engine == "sqlite":
        from ops_project.backups.engines import sqlite

        return sqlite.snapshot(database.path, scratch_dir=settings.scratch_dir)
    from ops_project.backups.engines import postgres

    if not pg_url:
        raise BackupError(f"database {database.name}: no PostgreSQL URL (set the variable {database.url_env})")
    return postgres.snapshot(pg_url, name=database.name)


@dataclass
class Streamed:
    """What streaming a snapshot into the store produced."""

    result: StreamResult
    stored_size: int
    point_in_time: datetime
    stats: SnapshotStats
    source_size: int
    tool_versions: dict[str, str] = field(default_factory=dict)
    checksum_method: str = ""


def stream_snapshot(snapshot_cm: contextlib.AbstractContextManager, store: ObjectStore, key: str, *,
                    settings: BackupConfig, recipients: list | None, size_hint: int | None,
                    now: Callable[[], datetime], log: Callable[[str], None]) -> Streamed:
    """Snapshot → encode → one object at ``key``; the object is committed only when all of it arrived."""
    writer = store.writer(key, size_hint=size_hint)
    try:
        with snapshot_cm as snap:
            point_in_time = now()
            log(f"snapshot at {point_in_time.isoformat()} streaming to {store.describe(key)}")
            result = encode(snap.stream, writer, level=settings.compression.level,
                            threads=settings.compression.threads, recipients=recipients)
            streamed = Streamed(result, 0, point_in_time, snap.stats(), snap.source_size(),
                                dict(snap.tool_versions), snap.checksum_method)
        streamed.stored_size = writer.commit()
    except BaseException:
        writer.abort()
        raise
    if streamed.stored_size != result.stored_size:
        store.delete(key)
        raise BackupError(f"{store.describe(key)}: stored {streamed.stored_size} bytes but encoded "
                          f"{result.stored_size}")
    return streamed


def build_manifest(database: DatabaseConfig, backup_id: str, data_object: str, streamed: Streamed, *,
                   settings: BackupConfig, recipients: list | None, window: Window | None, started: datetime,
                   finished: datetime, seconds: float) -> Manifest:
    tools = {**streamed.tool_versions, "ops_project": __version__, "python": platform.python_version(),
             "zstandard": zstandard.__version__, "zstd": ".".join(map(str, zstandard.ZSTD_VERSION))}
    if recipients:
        tools["pyrage"] = importlib.metadata.version("pyrage")
    return Manifest(
        database=database.name,
        engine=database.engine,
        backup_id=backup_id,
        partition_key=window.key if window else None,
        window_start=window.start.isoformat() if window else None,
        window_end=window.end.isoformat() if window else None,
        snapshot_started_at=started.isoformat(),
        snapshot_finished_at=streamed.point_in_time.isoformat(),
        source_size_bytes=streamed.source_size,
        stored_size_bytes=streamed.stored_size,
        sha256_stored=streamed.result.stored_sha256,
        sha256_plaintext=streamed.result.plaintext_sha256,
        data_object=data_object,
        compression={"codec": "zstd", "level": settings.compression.level},
        encryption={"scheme": "age-x25519",
                    "recipient_fingerprints": [recipient_fingerprint(r) for r in recipients]} if recipients else None,
        schema_fingerprint=streamed.stats.schema_fingerprint,
        tables=streamed.stats.tables,
        invariants=streamed.stats.invariants,
        checksum_settings=streamed.stats.checksum_settings,
        database_encoding=streamed.stats.encoding,
        checksum_method=streamed.checksum_method,
        tool_versions=tools,
        extra={"duration_seconds": round(seconds, 3), "finished_at": finished.isoformat(),
               "host": platform.node(), "argv0": sys.argv[0].rsplit("/", 1)[-1]},
    )


def write_manifest(store: ObjectStore, manifest: Manifest) -> None:
    """Written last: its presence is what makes the backup complete."""
    key = backup_prefix(manifest.database, manifest.backup_id) + MANIFEST
    try:
        store.put_bytes(key, manifest.to_json())
    except BaseException:
        # The write may have landed even though it reported failure: unmark the backup (best effort);
        # the data stays for retention to clean up, so a manifest never points at nothing.
        try:
            store.delete(key)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise


def take_backup(
    database: DatabaseConfig,
    store: ObjectStore,
    settings: BackupConfig,
    *,
    pg_url: str | None = None,
    recipients: list | None = None,
    window: Window | None = None,
    requested_at: datetime | None = None,
    now: Callable[[], datetime] = _now,
    log: Callable[[str], None] = lambda _msg: None,
) -> Manifest:
    """Snapshot ``database`` into ``store``: id, snapshot, stream, manifest. Returns the manifest written last.

    ``requested_at``: when the run was asked for (it may have waited in a queue); see ``check_window``.
    """
    if window is not None:
        check_window(window, now(), requested_at)
    store.check()  # a missing bucket or bad credentials fail before any work
    started = now()
    backup_id = reserve_id(store, database.name, started)
    name = data_name(database.engine, bool(recipients))
    clock = time.perf_counter()
    try:
        snapshot_cm = open_snapshot(database, settings, pg_url)
        streamed = stream_snapshot(snapshot_cm, store, backup_prefix(database.name, backup_id) + name,
                                   settings=settings, recipients=recipients, size_hint=_size_hint(database, pg_url),
                                   now=now, log=lambda m: log(f"{database.name}: {m}"))
    except BaseException:
        _release(store, database.name, backup_id)  # nothing was stored under it
        raise
    manifest = build_manifest(database, backup_id, name, streamed, settings=settings, recipients=recipients,
                              window=window, started=started, finished=now(), seconds=time.perf_counter() - clock)
    write_manifest(store, manifest)
    _release(store, database.name, backup_id)
    log(f"{database.name}: backup {backup_id} complete in region {store.region} "
        f"({streamed.source_size} → {streamed.stored_size} bytes)")
    return manifest
