"""``deploy_validation_job``: validate one release (partition = tag)."""

from dagster import AssetSelection, define_asset_job

from assets.releases import DEPLOY_KEY, releases_partitions


def build_deploy_job():
    return define_asset_job("deploy_validation_job", selection=AssetSelection.assets(DEPLOY_KEY),
                            partitions_def=releases_partitions, tags={"ops/kind": "deploy_validation"},
                            description="Check that the deployed service is the tagged release and works.")
