"""``capacity_report_job`` (one week's report) and ``capacity_metrics_job`` (one live measurement)."""

from dagster import AssetSelection, define_asset_job

from assets.capacity import METRICS_KEY, REPORT_KEY, capacity_partitions
from ops_project.config import OpsConfig


def build_capacity_jobs(cfg: OpsConfig):
    report = define_asset_job("capacity_report_job", selection=AssetSelection.assets(REPORT_KEY),
                              partitions_def=capacity_partitions(cfg), tags={"ops/kind": "capacity"},
                              description="Forecast every database, region and cache against its limit, price "
                                          "each region, chart what is within the horizon.")
    metrics = define_asset_job("capacity_metrics_job", selection=AssetSelection.assets(METRICS_KEY),
                               tags={"ops/kind": "capacity"},
                               description="Measure every database, region and Redis now (the next point of each "
                                           "series).")
    return report, metrics
