"""``database_backup`` and one ``backup_replica`` per secondary region: their specs and their stages.

The stages run inside the backup pipeline (``assets.pipeline``), one database at a time or a batch per run."""


from datetime import UTC, datetime

from dagster import AssetExecutionContext, AssetKey, AssetObservation, AssetSpec, MetadataValue
from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

from assets.stages import Item, Scope, Stage
from ops_project.backups.catalog import find_for_partition
from ops_project.backups.layout import backup_prefix
from ops_project.backups.windows import make_window
from ops_project.common.errors import BackupError, WindowClosedError
from ops_project.common.markdown import table
from ops_project.config import OpsConfig

BACKUP_KEY = AssetKey("database_backup")
SCHEDULED_TIME_TAG = SCHEDULED_EXECUTION_TIME_TAG  # set by Dagster on every run a schedule tick asks for


def replica_key(region: str) -> AssetKey:
    """``backup_replica/<region>``: the UI labels the asset with the region's own name (``eu-west-1``)."""
    return AssetKey(["backup_replica", region])


def _requested_at(context: AssetExecutionContext) -> datetime | None:
    """When the backup was asked for: a schedule's tick (also for a catch-up tick created late, after the daemon
    was down, and for a retry of a scheduled run, which keeps its tags), else the run's creation. A run that
    waited in the queue is measured from then, not from now."""
    tick = context.run.tags.get(SCHEDULED_TIME_TAG)
    if tick:
        try:
            at = datetime.fromisoformat(tick)
            return at if at.tzinfo else at.replace(tzinfo=UTC)
        except ValueError:
            pass
    record = context.instance.get_run_record_by_id(context.run_id)
    created = record.create_timestamp if record is not None else None
    if created is not None and created.tzinfo is None:  # run storage keeps naive UTC
        created = created.replace(tzinfo=UTC)
    return created


def mb(size: int) -> float:
    """Sizes in the UI are in MB (10⁶ bytes), beside the exact byte count."""
    return round(size / 1e6, 3)


def mb_per_s(size: int, seconds: float) -> float | None:
    return round(size / 1e6 / seconds, 2) if seconds and seconds > 0 else None


def present(metadata: dict) -> dict:
    """Leave out a number that does not exist (a rate over zero seconds) rather than show a sentinel."""
    return {k: v for k, v in metadata.items() if v is not None}


def engine_kinds(cfg: OpsConfig) -> set[str]:
    """The UI's kind badges: the engines actually configured, not every engine the code knows."""
    return {db.engine for db in cfg.databases} | {rule.engine for rule in cfg.discover}


def backup_spec(cfg: OpsConfig, partitions) -> AssetSpec:
    primary = cfg.primary.name
    return AssetSpec(
        BACKUP_KEY,
        partitions_def=partitions,
        skippable=True,  # a window asked for after it closed is skipped (missing), not failed (red)
        kinds={*engine_kinds(cfg), "zstd"},
        group_name="backups",
        owners=cfg.owners,
        description=(
            f"A consistent online snapshot of one database for one backup window, compressed with zstd, "
            f"optionally age-encrypted, checksummed and stored in the primary region ({primary}). The manifest "
            f"(row counts, checksums) is written last: a backup without one is incomplete and never restorable. "
            f"A window can be taken only after it ends and before its grace period closes. A window asked for "
            f"after it closed (a stray UI or backfill attempt) stores nothing and is skipped, with the reason in "
            f"its observations; a scheduled backup that waited in the queue until its window closed fails: "
            f"that window's backup is missed."))


def replica_spec(cfg: OpsConfig, region: str, partitions) -> AssetSpec:
    return AssetSpec(
        replica_key(region),
        deps=[BACKUP_KEY],
        partitions_def=partitions,
        skippable=True,
        kinds={"s3"} if cfg.region(region).kind == "s3" else {"file"},
        group_name="backups",
        owners=cfg.owners,
        description=(
            f"The window's backup copied from {cfg.primary.name} to {region} and verified there (sha256 of the "
            f"stored bytes re-read at the destination, manifest written last). Re-running re-verifies; a replica "
            f"that no longer matches is reported and re-copied."))


def backup_stage(scope: Scope, item: Item) -> Stage:
    """Snapshot ``item``'s database for its window into the primary region."""
    from ops_project.backups.take import take_backup  # the snapshot machinery, only in the run

    cfg, primary = scope.cfg, scope.cfg.primary.name
    tw = scope.windows.time_window_for_partition_key(item.window)
    window = make_window(item.window, tw.start, tw.end, cfg.backup.grace_minutes)
    store = scope.store(primary)
    try:
        manifest = take_backup(cfg.database(item.database), store, cfg.backup,
                               pg_url=scope.databases.prepare(item.database), recipients=scope.recipients,
                               window=window, requested_at=scope.requested_at, log=scope.log)
    except WindowClosedError as exc:
        if not exc.skippable:
            raise
        # Refusing a window that closed long ago loses nothing: it stays missing, with the reason.
        scope.warn(f"{item.database}: skipped: {exc}")
        return Stage.skipped(AssetObservation(asset_key=BACKUP_KEY, partition=item.key,
                                              metadata={"skipped": str(exc), "region": primary}))
    ratio = manifest.source_size_bytes / max(manifest.stored_size_bytes, 1)
    duration = manifest.extra.get("duration_seconds", 0.0)
    return Stage.done(item.materialization(BACKUP_KEY, present({
        "backup_id": manifest.backup_id,
        "region": primary,
        "location": MetadataValue.path(store.describe(backup_prefix(item.database, manifest.backup_id))),
        "source_size_mb": mb(manifest.source_size_bytes),
        "stored_size_mb": mb(manifest.stored_size_bytes),
        "throughput_mb_per_s": mb_per_s(manifest.source_size_bytes, duration),
        "source_size_bytes": manifest.source_size_bytes,
        "stored_size_bytes": manifest.stored_size_bytes,
        "compression_ratio": round(ratio, 2),
        "sha256_stored": manifest.sha256_stored,
        "encrypted": manifest.encryption is not None,
        "total_rows": manifest.total_rows,
        "snapshot_at": manifest.snapshot_finished_at,
        "duration_seconds": duration,
        "tables": MetadataValue.md(table(["table", "rows"], [(name, stats.rows)
                                                             for name, stats in manifest.tables.items()])),
    })), backup_id=manifest.backup_id)


def replica_stage(scope: Scope, item: Item, region: str, backup_id: str | None) -> Stage:
    """Copy the window's backup (``backup_id`` when this run took it, else found by its window) to ``region``."""
    from ops_project.backups.replicate import replicate

    primary = scope.cfg.primary.name
    src, dst = scope.store(primary), scope.store(region)
    if backup_id is None:
        entry = find_for_partition(src, item.database, item.window)
        if entry is None:
            raise BackupError(f"no complete backup of {item.database} for window {item.window} in region "
                              f"{primary}: materialise database_backup for this partition first")
        backup_id = entry.backup_id
    result = replicate(src, dst, item.database, backup_id)
    if result.problem:
        scope.warn(f"{item.database}: replica in {region} was corrupt and has been re-copied: {result.problem}")
    return Stage.done(item.materialization(replica_key(region), present({
        "backup_id": result.backup_id,
        "source_region": result.source_region,
        "region": result.region,
        "location": MetadataValue.path(dst.describe(backup_prefix(item.database, result.backup_id))),
        "copied": result.copied,
        "repaired": result.repaired,
        "copied_mb": mb(result.bytes),
        "copy_mb_per_s": mb_per_s(result.bytes, result.copy_seconds),
        "bytes": result.bytes,
        "copy_seconds": round(result.copy_seconds, 3),
        "verify_seconds": round(result.verify_seconds, 3),
        "replication_lag_seconds": result.lag_seconds,
        "problem_found": result.problem or "none",
    })), backup_id=result.backup_id)
