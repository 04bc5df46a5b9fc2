"""``dr_drill_job``: one week's DR drill."""

from dagster import AssetSelection, define_asset_job

from assets.drills import DRILL_KEY, drill_partitions
from ops_project.config import OpsConfig


def build_drill_job(cfg: OpsConfig):
    return define_asset_job("dr_drill_job", selection=AssetSelection.assets(DRILL_KEY),
                            partitions_def=drill_partitions(cfg), tags={"ops/kind": "drill"},
                            description="Run every DR scenario and record the achieved RTO and RPO.")
