"""``backup_pipeline``: one step that backs up, replicates and restore-tests one database or a batch of them.

The three kinds of backup asset (``database_backup``, ``backup_replica/<region>``, ``restore_verification``)
are computed by this one subsettable multi-asset, so that a run of fifty tenants pays its fixed cost once and
every database still gets its own materializations, check results and verdict on its own partitions:
- a run targets one partition (a UI click, a backfill, a re-run of one tenant) or a range of databases in one
  window (a scheduled batch, ``backup.batch_size``); inside it the databases are fanned out over
  ``backup.batch_workers`` threads (``ops_project.backups.batch``) and each goes through the selected stages in
  order: snapshot → replicas → restore test from the restore region;
- a database whose stage fails stops there and is named in the step's failure; the others carry on and
  record their results. Dagster marks a partition red when the run failed without materializing it, so a
  failed tenant reads failed on its own partitions while the batch's good ones read materialized;
- a skipped window (asked for after it closed, or nothing to verify) records an observation and stays missing.
"""


from dagster import (
    AssetCheckEvaluation,
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    Failure,
    MetadataValue,
    multi_asset,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.storage.event_log.base import AssetRecordsFilter
from dagster._record import copy

from assets.backups import (
    BACKUP_KEY,
    _requested_at,
    backup_spec,
    backup_stage,
    replica_key,
    replica_spec,
    replica_stage,
)
from assets.guard import guarded
from assets.partitions import backup_partitions, window_partitions
from assets.stages import Item, Scope, Stage
from assets.verification import RESTORE_KEY, restore_spec, restore_stage, window_checks
from ops_project.backups.batch import fan_out
from ops_project.common.errors import OpsError
from ops_project.common.markdown import table
from ops_project.config import OpsConfig
from ops_project.notify.rules import REPORTED_BY_CHECKS
from resources import region_key


def build_backup_pipeline(cfg: OpsConfig) -> AssetsDefinition:
    partitions = backup_partitions(cfg)
    windows = window_partitions(cfg)
    primary, restore_region = cfg.primary.name, cfg.restore_region.name
    secondaries = [r.name for r in cfg.secondaries]

    @multi_asset(
        name="backup_pipeline",
        specs=[backup_spec(cfg, partitions), *(replica_spec(cfg, r, partitions) for r in secondaries),
               restore_spec(cfg, partitions)],
        check_specs=window_checks(partitions),
        partitions_def=partitions,
        can_subset=True,
        required_resource_keys={"ops_config", "encryption", "databases", *(region_key(r.name) for r in cfg.regions)},
        op_tags={"ops/kind": "backup"},
    )
    @guarded
    def backup_pipeline(context: AssetExecutionContext):
        selected = context.selected_asset_keys
        ops_cfg = context.resources.ops_config.load()
        items = [Item(partitions.get_partition_key_from_str(str(key))) for key in context.partition_keys]
        take = BACKUP_KEY in selected
        copies = [r for r in secondaries if replica_key(r) in selected]
        prove = RESTORE_KEY in selected
        used = {*([primary] if take or copies else []), *copies, *([restore_region] if prove else [])}
        encryption = context.resources.encryption
        scope = Scope(cfg=ops_cfg, windows=windows, databases=context.resources.databases,
                      stores={r: getattr(context.resources, region_key(r)).store() for r in sorted(used)},
                      recipients=encryption.parsed() if take else None,
                      identities=encryption.identities() if prove else None,
                      requested_at=_requested_at(context) if take else None,
                      log=context.log.info, warn=context.log.warning)

        # the selected stages, in order; each gets the backup id the one before it produced (None: find it)
        steps = [*([lambda item, _: backup_stage(scope, item)] if take else []),
                 *((lambda item, backup_id, r=r: replica_stage(scope, item, r, backup_id)) for r in copies),
                 *([lambda item, backup_id: restore_stage(scope, item, backup_id)] if prove else [])]

        def stages_of(item: Item) -> list[Stage]:
            out: list[Stage] = []
            backup_id = None
            for step in steps:
                try:
                    stage = step(item, backup_id)
                except Exception as exc:  # noqa: BLE001 - this database fails here; the batch goes on
                    stage = Stage.failed([], exc)
                out.append(stage)
                if stage.stop:
                    break
                backup_id = stage.backup_id or backup_id
            return out

        failures: dict[str, BaseException] = {}
        targets: dict[tuple, AssetCheckEvaluationTargetMaterializationData | None] = {}
        for count, done in enumerate(fan_out(items, stages_of, workers=ops_cfg.backup.batch_workers), 1):
            for stage in done.result if done.error is None else [Stage.failed([], done.error)]:
                for event in stage.events:
                    yield _targeted(context, event, targets)
                if stage.failure is not None:
                    failures[done.item.database] = stage.failure
            if len(items) > 1:
                failure = failures.get(done.item.database)
                if failure is None:
                    context.log.info(f"{done.item.database}: done ({count}/{len(items)})")
                else:
                    context.log.error(f"{done.item.database}: FAILED ({count}/{len(items)}): {_message(failure)}")
        if not failures:
            return
        if len(items) == 1:
            raise next(iter(failures.values()))  # a run of one database fails exactly as that database did
        raise batch_failure(failures, len(items), items[0].window)

    return backup_pipeline


def _targeted(context: AssetExecutionContext, event, targets: dict):
    """A check evaluation names the materialization it is about: the partition's newest, as Dagster does for an
    ``AssetCheckResult`` (this run's, when it just recorded one)."""
    if isinstance(event, AssetMaterialization):
        targets.pop((event.asset_key, event.partition), None)
        return event
    if not isinstance(event, AssetCheckEvaluation) or event.target_materialization_data is not None:
        return event
    where = (event.asset_key, event.partition)
    if where not in targets:
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=event.asset_key, asset_partitions=[event.partition]), limit=1).records
        targets[where] = AssetCheckEvaluationTargetMaterializationData(
            run_id=records[0].event_log_entry.run_id, storage_id=records[0].storage_id,
            timestamp=records[0].timestamp) if records else None
    return copy(event, target_materialization_data=targets[where])


def _message(exc: BaseException) -> str:
    if isinstance(exc, Failure):
        return exc.description or "failed"
    if isinstance(exc, OpsError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def batch_failure(failures: dict[str, BaseException], total: int, window: str) -> Failure:
    """One failure for the batch that names every database that failed and why (each is red on its own
    partitions; the batch's others are not)."""
    names = sorted(failures)
    lines = "; ".join(f"{name}: {_message(failures[name])}" for name in names[:10])
    more = f"; and {len(names) - 10} more" if len(names) > 10 else ""
    checks_say_why = all(isinstance(f, Failure) and f.metadata.get(REPORTED_BY_CHECKS) for f in failures.values())
    return Failure(
        description=f"{len(names)} of {total} databases failed in window {window}: {lines}{more}. The others "
                    f"are recorded; re-run a failed database alone from its partition.",
        metadata={"failed_databases": len(names), "databases_in_run": total,
                  "failures": MetadataValue.md(table(["database", "why"],
                                                     [(n, _message(failures[n])[:300]) for n in names])),
                  **({REPORTED_BY_CHECKS: True} if checks_say_why else {})})
