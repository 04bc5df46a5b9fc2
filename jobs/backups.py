"""``backup_job`` (snapshot + replicas per partition) and ``backup_retention``."""


from datetime import UTC, datetime

from dagster import (
    AssetSelection,
    Config,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    Output,
    define_asset_job,
    job,
    op,
)

from assets.backups import BACKUP_KEY, replica_key
from assets.guard import guarded
from assets.partitions import backup_partitions
from assets.verification import RESTORE_KEY, RPO_KEY
from ops_project.backups.retention import apply, plan_regions
from ops_project.config import OpsConfig
from resources import region_key


def build_backup_job(cfg: OpsConfig) -> object:
    keys = [BACKUP_KEY, *(replica_key(r.name) for r in cfg.secondaries), RESTORE_KEY]
    return define_asset_job(
        "backup_job",
        selection=AssetSelection.assets(*keys),
        partitions_def=backup_partitions(cfg),
        tags={"ops/kind": "backup"},
        description="Back up one database for one window into the primary region, replicate it, then prove it "
                    "by restoring it from the DR region.",
    )


def build_restore_verification_job(cfg: OpsConfig) -> object:
    return define_asset_job(
        "restore_verification_job",
        selection=AssetSelection.assets(RESTORE_KEY),
        partitions_def=backup_partitions(cfg),
        tags={"ops/kind": "restore"},
        description="Restore-test one window's backup (backfill it over a range of windows to re-test history).",
    )


def build_rpo_job(cfg: OpsConfig) -> object:
    return define_asset_job("verified_rpo_job", selection=AssetSelection.assets(RPO_KEY),
                            tags={"ops/kind": "rpo"},
                            description="Measure the verified RPO of every database.")


class RetentionConfig(Config):
    dry_run: bool = False


def build_retention_job(cfg: OpsConfig) -> JobDefinition:
    region_keys = {region_key(r.name) for r in cfg.regions}

    @op(required_resource_keys={"ops_config", *region_keys}, tags={"ops/kind": "retention"})
    @guarded
    def apply_retention(context: OpExecutionContext, config: RetentionConfig):
        """Compute the GFS plan per region, show it, then delete (unless dry_run)."""
        ops_cfg = context.resources.ops_config.load()
        now = datetime.now(UTC)
        report, deleted_total = [], 0
        stores = [getattr(context.resources, region_key(r.name)).store() for r in ops_cfg.regions]
        plans = plan_regions(stores, ops_cfg.backup.retention, now=now, tz=ops_cfg.tz)
        for region, store, retention_plan in zip(ops_cfg.regions, stores, plans, strict=True):
            report.append(retention_plan.markdown())
            context.log.info(retention_plan.markdown())
            if not config.dry_run:
                deleted = apply(store, retention_plan)
                deleted_total += len(deleted)
                context.log.info(f"region {region.name}: deleted {len(deleted)} objects")
        yield Output(None, metadata={
            "dry_run": config.dry_run,
            "plan": MetadataValue.md("\n\n".join(report)),
            "objects_deleted": deleted_total,
        })

    @job(name="backup_retention", tags={"ops/kind": "retention"},
         description="Keep-last plus daily/weekly/monthly retention in every region; plan first, dry run "
                     "supported; never deletes the newest good backup.")
    def backup_retention():
        apply_retention()

    return backup_retention
