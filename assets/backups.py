"""``database_backup`` and one ``backup_replica`` per secondary region."""


from datetime import UTC, datetime

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG

from assets.guard import guarded
from assets.partitions import backup_partitions, window_partitions
from ops_project.backups.catalog import find_for_partition
from ops_project.backups.layout import backup_prefix
from ops_project.backups.windows import make_window
from ops_project.common.errors import BackupError, WindowClosedError
from ops_project.common.markdown import table
from ops_project.config import OpsConfig
from resources import database_key, region_key

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


def _dims(context: AssetExecutionContext) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys["database"], keys["window"]


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
    return {db.engine for db in cfg.databases}


def build_backup_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    partitions = backup_partitions(cfg)
    windows = window_partitions(cfg)
    primary = cfg.primary.name
    db_keys = {database_key(db.name) for db in cfg.databases}

    @asset(
        key=BACKUP_KEY,
        partitions_def=partitions,
        required_resource_keys={"ops_config", "encryption", region_key(primary), *db_keys},
        kinds={*engine_kinds(cfg), "zstd"},
        group_name="backups",
        owners=cfg.owners,
        op_tags={"ops/kind": "backup"},
        output_required=False,  # a window asked for after it closed is skipped (missing), not failed (red)
        description=(
            f"A consistent online snapshot of one database for one backup window, compressed with zstd, "
            f"optionally age-encrypted, checksummed and stored in the primary region ({primary}). The manifest "
            f"(row counts, checksums) is written last: a backup without one is incomplete and never restorable. "
            f"A window can be taken only after it ends and before its grace period closes. A window asked for "
            f"after it closed (a stray UI or backfill attempt) stores nothing and is skipped, with the reason in "
            f"its observations; a scheduled backup that waited in the queue until its window closed fails: "
            f"that window's backup is missed."),
    )
    @guarded
    def database_backup(context: AssetExecutionContext):
        from ops_project.backups.take import take_backup  # the snapshot machinery, only in the run

        database, window_key = _dims(context)
        ops_cfg = context.resources.ops_config.load()
        tw = windows.time_window_for_partition_key(window_key)
        window = make_window(window_key, tw.start, tw.end, ops_cfg.backup.grace_minutes)
        pg_url = getattr(context.resources, database_key(database)).prepare()
        store = getattr(context.resources, region_key(primary)).store()
        requested = _requested_at(context)
        try:
            manifest = take_backup(ops_cfg.database(database), store, ops_cfg.backup, pg_url=pg_url,
                                   recipients=context.resources.encryption.parsed(), window=window,
                                   requested_at=requested,
                                   log=context.log.info)
        except WindowClosedError as exc:
            if not exc.skippable:
                raise
            # Refusing a window that closed long ago loses nothing: it stays missing, with the reason.
            context.log.warning(f"skipped: {exc}")
            yield AssetObservation(asset_key=BACKUP_KEY, partition=context.partition_key,
                                   metadata={"skipped": str(exc), "region": primary})
            return
        ratio = manifest.source_size_bytes / max(manifest.stored_size_bytes, 1)
        duration = manifest.extra.get("duration_seconds", 0.0)
        yield MaterializeResult(metadata=present({
            "backup_id": manifest.backup_id,
            "region": primary,
            "location": MetadataValue.path(store.describe(backup_prefix(database, manifest.backup_id))),
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
        }))

    assets = [database_backup]
    for region in cfg.secondaries:
        assets.append(_replica_asset(cfg, region.name, partitions))
    return assets


def _replica_asset(cfg: OpsConfig, region: str, partitions) -> AssetsDefinition:
    primary = cfg.primary.name

    @asset(
        key=replica_key(region),
        deps=[BACKUP_KEY],
        partitions_def=partitions,
        required_resource_keys={region_key(primary), region_key(region)},
        kinds={"s3"} if cfg.region(region).kind == "s3" else {"file"},
        group_name="backups",
        owners=cfg.owners,
        op_tags={"ops/kind": "replication", "ops/region": region},
        description=(
            f"The window's backup copied from {primary} to {region} and verified there (sha256 of the stored "
            f"bytes re-read at the destination, manifest written last). Re-running re-verifies; a replica "
            f"that no longer matches is reported and re-copied."),
    )
    @guarded
    def backup_replica(context: AssetExecutionContext) -> MaterializeResult:
        from ops_project.backups.replicate import replicate

        database, window_key = _dims(context)
        src = getattr(context.resources, region_key(primary)).store()
        dst = getattr(context.resources, region_key(region)).store()
        entry = find_for_partition(src, database, window_key)
        if entry is None:
            raise BackupError(f"no complete backup of {database} for window {window_key} in region {primary}: "
                              f"materialise database_backup for this partition first")
        result = replicate(src, dst, database, entry.backup_id)
        if result.problem:
            context.log.warning(f"replica was corrupt and has been re-copied: {result.problem}")
        return MaterializeResult(metadata=present({
            "backup_id": result.backup_id,
            "source_region": result.source_region,
            "region": result.region,
            "location": MetadataValue.path(dst.describe(backup_prefix(database, result.backup_id))),
            "copied": result.copied,
            "repaired": result.repaired,
            "copied_mb": mb(result.bytes),
            "copy_mb_per_s": mb_per_s(result.bytes, result.copy_seconds),
            "bytes": result.bytes,
            "copy_seconds": round(result.copy_seconds, 3),
            "verify_seconds": round(result.verify_seconds, 3),
            "replication_lag_seconds": result.lag_seconds,
            "problem_found": result.problem or "none",
        }))

    return backup_replica
