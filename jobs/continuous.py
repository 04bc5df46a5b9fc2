"""``continuous_rpo_job`` and ``point_in_time_restore_job``: continuous protection's two proofs; with WAL-archived
PostgreSQL clusters, ``continuous_base_backup_job`` too."""

from dagster import AssetSelection, define_asset_job

from assets.continuous import BASE_BACKUP_KEY, PITR_KEY, REPLICATION_KEY
from ops_project.config import OpsConfig


def build_continuous_jobs(cfg: OpsConfig) -> list:
    if cfg.continuous is None:
        return []
    return [
        define_asset_job("continuous_rpo_job", selection=AssetSelection.assets(REPLICATION_KEY),
                         tags={"ops/kind": "rpo"},
                         description="Read how far each continuous replica has got (the current RPO)."),
        define_asset_job("point_in_time_restore_job", selection=AssetSelection.assets(PITR_KEY),
                         tags={"ops/kind": "restore"},
                         description="Restore each continuous replica to a random moment and to its newest "
                                     "position, and prove both."),
        *([define_asset_job("continuous_base_backup_job", selection=AssetSelection.assets(BASE_BACKUP_KEY),
                            tags={"ops/kind": "backup"},
                            description="A full pgBackRest backup of each WAL-archived PostgreSQL cluster into "
                                        "every region.")] if cfg.continuous_postgres else []),
    ]
