"""Take a backup: consistent snapshot → zstd → [age] → sha256 → primary region, manifest last.

Used by the ``database_backup`` asset and by ``python -m ops_project backups take``. Whatever
fails, nothing is marked complete: the data upload is aborted (or removed) and the manifest,
which is what makes a backup complete, is written only after everything else succeeded.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import zstandard

from ops_project import __version__
from ops_project.catalog import list_backups
from ops_project.config import BackupConfig, DatabaseConfig
from ops_project.errors import BackupError, WindowClosedError
from ops_project.layout import MANIFEST, backup_prefix, data_name, new_backup_id
from ops_project.manifest import Manifest
from ops_project.pipeline import encode, recipient_fingerprint
from ops_project.storage import ObjectStore


@dataclass(frozen=True)
class Window:
    """A backup window [start, end) and the time after which it may no longer be backed up."""

    key: str
    start: datetime
    end: datetime
    closes: datetime


def check_window(window: Window, now: datetime) -> None:
    """A window may be backed up only between its end and its closing time (end + grace)."""
    if now < window.end:
        raise WindowClosedError(
            f"backup window {window.key} ends at {window.end.isoformat()}; it cannot be backed up before "
            f"then (now {now.isoformat()}). Materialise the latest finished window instead.")
    if now > window.closes:
        raise WindowClosedError(
            f"backup window {window.key} ended at {window.end.isoformat()} and could be backed up until "
            f"{window.closes.isoformat()}; it is now {now.isoformat()}. A snapshot taken now would store "
            f"today's data under that window's name, so nothing was stored. Materialise the latest finished "
            f"window, or take an ad-hoc backup with `python -m ops_project backups take`.")


def make_window(key: str, start: datetime, end: datetime, grace_minutes: int | None) -> Window:
    """Default grace: one window length, so the latest finished window can always still be taken."""
    grace = timedelta(minutes=grace_minutes) if grace_minutes else end - start
    return Window(key=key, start=start, end=end, closes=end + grace)


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


def take_backup(
    database: DatabaseConfig,
    store: ObjectStore,
    settings: BackupConfig,
    *,
    pg_url: str | None = None,
    recipients: list | None = None,
    window: Window | None = None,
    now: Callable[[], datetime] = _now,
    log: Callable[[str], None] = lambda _msg: None,
) -> Manifest:
    """Snapshot ``database`` into ``store``; returns the manifest that was written last."""
    if window is not None:
        check_window(window, now())
    store.check()  # a missing bucket or bad credentials fail before any work
    started = now()
    taken = {e.backup_id for e in list_backups(store, database.name, read_manifests=False)}
    backup_id = new_backup_id(started, taken)
    prefix = backup_prefix(database.name, backup_id)
    name = data_name(database.engine, bool(recipients))
    data_key = prefix + name
    level, threads = settings.compression.level, settings.compression.threads
    clock = time.perf_counter()

    if database.engine == "sqlite":
        from ops_project.databases import sqlite

        snap_cm = sqlite.snapshot(database.path, scratch_dir=settings.scratch_dir)
    else:
        from ops_project.databases import postgres

        if not pg_url:
            raise BackupError(f"database {database.name}: no PostgreSQL URL (set the variable {database.url_env})")
        snap_cm = postgres.snapshot(pg_url, name=database.name)

    writer = store.writer(data_key, size_hint=_size_hint(database, pg_url))
    try:
        with snap_cm as snap:
            point_in_time = now()
            log(f"{database.name}: snapshot at {point_in_time.isoformat()} streaming to {store.describe(data_key)}")
            result = encode(snap.stream, writer, level=level, threads=threads, recipients=recipients)
            stats = snap.stats()
            source_size = snap.source_size()
            tools = dict(snap.tool_versions)
            checksum_method = snap.checksum_method
        stored_size = writer.commit()
    except BaseException:
        writer.abort()
        raise
    finished = now()
    if stored_size != result.stored_size:
        store.delete(data_key)
        raise BackupError(f"{store.describe(data_key)}: stored {stored_size} bytes but encoded {result.stored_size}")

    tools.update({"ops_project": __version__, "python": platform.python_version(),
                  "zstandard": zstandard.__version__, "zstd": ".".join(map(str, zstandard.ZSTD_VERSION))})
    if recipients:
        tools["pyrage"] = importlib.metadata.version("pyrage")
    manifest = Manifest(
        database=database.name,
        engine=database.engine,
        backup_id=backup_id,
        partition_key=window.key if window else None,
        window_start=window.start.isoformat() if window else None,
        window_end=window.end.isoformat() if window else None,
        snapshot_started_at=started.isoformat(),
        snapshot_finished_at=point_in_time.isoformat(),
        source_size_bytes=source_size,
        stored_size_bytes=stored_size,
        sha256_stored=result.stored_sha256,
        sha256_plaintext=result.plaintext_sha256,
        data_object=name,
        compression={"codec": "zstd", "level": level},
        encryption={"scheme": "age-x25519",
                    "recipient_fingerprints": [recipient_fingerprint(r) for r in recipients]} if recipients else None,
        schema_fingerprint=stats.schema_fingerprint,
        tables=stats.tables,
        checksum_method=checksum_method,
        tool_versions=tools,
        extra={"duration_seconds": round(time.perf_counter() - clock, 3), "finished_at": finished.isoformat(),
               "host": platform.node(), "argv0": sys.argv[0].rsplit("/", 1)[-1]},
    )
    try:
        store.put_bytes(prefix + MANIFEST, manifest.to_json())
    except BaseException:
        # The write may have landed even though it reported failure: unmark the backup (best effort);
        # the data stays for retention to clean up, so a manifest never points at nothing.
        try:
            store.delete(prefix + MANIFEST)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    log(f"{database.name}: backup {backup_id} complete in region {store.region} "
        f"({source_size} → {stored_size} bytes)")
    return manifest
