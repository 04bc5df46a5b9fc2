"""``restore_verification`` (its spec, blocking checks and stage) and ``verified_rpo``."""

import warnings
from datetime import UTC, datetime

from dagster import (
    AllPartitionMapping,
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from dagster._utils.warnings import PreviewWarning

from assets.backups import BACKUP_KEY, engine_kinds, replica_key
from assets.guard import guarded
from assets.partitions import database_names, joined_at
from assets.stages import Item, Scope, Stage
from ops_project.backups.blame import blame
from ops_project.backups.catalog import find_for_partition, read_manifest
from ops_project.backups.checklist import CHECKS
from ops_project.backups.rpo import fleet_verdict, rpo_table, verified_rpos
from ops_project.common.checks import Outcome
from ops_project.common.errors import StorageError
from ops_project.config import OpsConfig
from ops_project.continuous.record import verified_to
from ops_project.notify.rules import REPORTED_BY_CHECKS
from resources import region_key

RESTORE_KEY = AssetKey("restore_verification")
RPO_KEY = AssetKey("verified_rpo")


RPO_CHECK = "rpo"  # one check for the fleet: a thousand per-database checks cost most of the hourly job


def restore_spec(cfg: OpsConfig, partitions) -> AssetSpec:
    source = cfg.restore_region.name
    upstream = [replica_key(r.name) for r in cfg.secondaries] or [BACKUP_KEY]
    return AssetSpec(
        RESTORE_KEY, deps=upstream, partitions_def=partitions, skippable=True, kinds=engine_kinds(cfg),
        group_name="backups",
        owners=cfg.owners,
        description=(
            f"The window's backup restored from region {source} (the disaster-recovery path) into a scratch "
            f"database and proven whole: sha256 of stored and plaintext bytes, the engine's own integrity "
            f"checks, schema fingerprint, row counts and content checksums against the manifest, and the "
            f"booking invariants. Every phase is timed and compared with the RTO. A window whose backup fails "
            f"verification is failed (red), with every check result kept for that window; a window that has "
            f"no backup (never taken, or removed by retention) is skipped and stays missing, with the reason in "
            f"its observations; a verification we could not carry out (region unreachable, scratch full, key "
            f"missing) fails as 'could not verify' without check verdicts. Only a passing verification "
            f"protects a backup from retention and counts towards the verified RPO. Backfill it over past "
            f"windows to re-test old backups."))


def window_checks(partitions) -> list[AssetCheckSpec]:
    """The restore checks, partitioned like the asset: each result belongs to its window ("Partition" in the UI)."""
    with warnings.catch_warnings():  # partitioned checks are a Dagster preview: used on purpose, once, here
        warnings.simplefilter("ignore", PreviewWarning)
        return [AssetCheckSpec(name, asset=RESTORE_KEY, blocking=blocking, description=what, partitions_def=partitions)
                for name, (blocking, what) in CHECKS.items()]


def check_evaluations(report, partition: str) -> list[AssetCheckEvaluation]:
    """``report``: an ``ops_project.backups.verify.Report``; one evaluation per check, for ``partition``.

    Evaluations rather than ``AssetCheckResult``s: a batch run holds many partitions, and a result can only
    name the run's one partition. The pipeline fills in which materialization each evaluation is about."""
    return [
        AssetCheckEvaluation(
            asset_key=RESTORE_KEY, check_name=c.name, passed=c.passed, partition=partition, blocking=c.blocking,
            severity=AssetCheckSeverity.ERROR if c.blocking else AssetCheckSeverity.WARN,
            description=c.message[:1000],
            metadata={"backup_id": report.backup_id, "region": report.region, "detail": c.message[:1000],
                      **{k: v for k, v in c.metadata.items() if isinstance(v, str | int | float | bool)}},
        )
        for c in report.checks
    ]


def restore_stage(scope: Scope, item: Item, backup_id: str | None) -> Stage:
    """Restore the window's backup (``backup_id`` when this run made it, else found by its window) from the
    restore region and prove it."""
    source = scope.cfg.restore_region.name
    database, window = item.database, item.window
    store = scope.store(source)
    try:
        manifest = read_manifest(store, database, backup_id) if backup_id else None
        if manifest is None:
            entry = find_for_partition(store, database, window)
            manifest = entry.manifest if entry is not None else None
    except StorageError as exc:
        if blame(exc) is not Outcome.INCONCLUSIVE:
            raise
        # the region did not answer: that says nothing about the backup
        raise Failure(description=f"could not verify {database} for window {window} from region {source} "
                                  f"(inconclusive: not the backup's fault): {exc}",
                      metadata={"outcome": Outcome.INCONCLUSIVE.value}) from None
    if manifest is None:
        reason = (f"no backup for this window: region {source} holds no complete backup of {database} for "
                  f"window {window} (never taken, or removed by retention); nothing to verify")
        scope.warn(f"{database}: {reason}")
        return Stage.skipped(AssetObservation(asset_key=RESTORE_KEY, partition=str(item.key),
                                              metadata={"skipped": reason, "region": source}))
    from ops_project.backups.verify import record, verify  # the restore machinery, only in the run

    cfg = scope.cfg
    report = verify(store, cfg.database(database), manifest, rto_minutes=cfg.objectives.rto_minutes,
                    identities=scope.identities, scratch_dir=cfg.restore.scratch_dir,
                    pg_server_url=scope.databases.server_for_scratch(database))
    record(store, report)
    if report.passed:  # the full report is in the materialization's metadata; a batch logs one line per database
        scope.log(f"{database}: backup {report.backup_id} passed restore verification from {report.region}")
    else:
        scope.warn(report.markdown())
    if report.outcome is Outcome.INCONCLUSIVE:
        # Our environment failed, not the backup: no check verdicts (they would read as a corrupt backup),
        # a failure that says "could not verify", and the backup's earlier verdict stands.
        raise Failure(description=f"could not verify {database} backup {report.backup_id} from region "
                                  f"{report.region} (inconclusive: not the backup's fault): {report.error}",
                      metadata={"outcome": report.outcome.value, "backup_id": report.backup_id,
                                "report": MetadataValue.md(report.markdown())})
    t = report.timings
    metadata = {
        "verdict": "passed" if report.passed else "FAILED",
        "outcome": report.outcome.value,
        "backup_id": report.backup_id, "region": report.region,
        "object": MetadataValue.path(report.object_url),
        "download_seconds": round(t.download, 3), "decode_seconds": round(t.decode, 3),
        "restore_seconds": round(t.restore, 3), "checks_seconds": round(t.checks, 3),
        "total_seconds": round(t.total, 3), "rto_objective_seconds": report.rto_seconds,
        "rows_in_manifest": manifest.total_rows,
        "report": MetadataValue.md(report.markdown()),
    }
    evaluations = check_evaluations(report, str(item.key))
    if report.passed:
        return Stage([item.materialization(RESTORE_KEY, metadata), *evaluations], backup_id=report.backup_id)
    failed = ", ".join(c.name for c in report.checks if not c.passed)
    return Stage.failed(evaluations, Failure(
        description=f"backup {report.backup_id} of {database} for window {window} FAILED restore verification "
                    f"from region {report.region} ({failed}): this backup cannot be trusted; it no longer counts "
                    f"towards the verified RPO",
        metadata={**metadata, REPORTED_BY_CHECKS: True}))


def build_verification_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    @asset(
        key=RPO_KEY,
        deps=[AssetDep(RESTORE_KEY, partition_mapping=AllPartitionMapping())],
        required_resource_keys={"ops_config", *(region_key(r.name) for r in cfg.regions)},
        check_specs=[AssetCheckSpec(RPO_CHECK, asset=RPO_KEY,
                                    description="every database's newest verified backup is within the RPO")],
        group_name="backups",
        owners=cfg.owners,
        kinds={"python"},
        op_tags={"ops/kind": "rpo"},
        description=(
            "For every database, the age of the newest backup that passed restore verification (or, for a "
            "continuously protected one, of the newest moment a point-in-time restore test proved, when that is "
            "newer), against the RPO objective: the data a restore would lose right now. The age of the last "
            "backup taken is shown beside it, but it is not the number to trust. One check for the fleet, `rpo`: "
            "it fails naming every database over its objective (or never verified)."),
    )
    @guarded
    def verified_rpo_asset(context: AssetExecutionContext):
        ops_cfg = context.resources.ops_config.load()
        stores = [getattr(context.resources, region_key(r.name)).store() for r in ops_cfg.regions]
        names = database_names(ops_cfg, context.instance)
        protected = [db.name for db in ops_cfg.continuous_protected]
        statuses = verified_rpos(stores, names, ops_cfg.objectives.rpo_minutes, now=datetime.now(UTC),
                                 joined=joined_at(context.instance) if ops_cfg.discovers else None,
                                 pitr=verified_to(stores, protected) if protected else None)
        metadata = {}
        for status in statuses:
            # numbers only where there is one: no -1 for "never verified" (it would plot as a real age)
            if status.verified_age_minutes is not None:
                metadata[f"{status.database}_verified_age_minutes"] = status.verified_age_minutes
            metadata[f"{status.database}_verified_backup_id"] = status.verified_backup_id or "none verified yet"
            if status.pitr_age_minutes is not None:
                metadata[f"{status.database}_point_in_time_age_minutes"] = status.pitr_age_minutes
        verdict = fleet_verdict(statuses)
        metadata["rpo_objective_minutes"] = ops_cfg.objectives.rpo_minutes
        metadata["summary"] = MetadataValue.md(rpo_table(statuses))
        check = AssetCheckResult(asset_key=RPO_KEY, check_name=RPO_CHECK, passed=verdict.passed,
                                 severity=AssetCheckSeverity.ERROR, description=verdict.message[:1000],
                                 metadata=verdict.metadata())
        yield MaterializeResult(metadata=metadata, check_results=[check])
        if not verdict.passed:  # recorded above, and the run fails: an RPO breach must not end green
            raise Failure(description=verdict.message, metadata={REPORTED_BY_CHECKS: True})

    return [verified_rpo_asset]
