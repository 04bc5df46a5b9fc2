"""``slow_query_job``: the daily slow-query report of one database."""

from dagster import AssetSelection, define_asset_job

from assets.queries import QUERIES_KEY, query_partitions
from ops_project.config import OpsConfig


def build_query_job(cfg: OpsConfig):
    return define_asset_job("slow_query_job", selection=AssetSelection.assets(QUERIES_KEY),
                            partitions_def=query_partitions(cfg), tags={"ops/kind": "queries"},
                            description="Rank one database's statements of one day and compare them with the day "
                                        "before (backfill it over past days).")
