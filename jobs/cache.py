"""``cache_warmup_job``: warm the availability cache (after a validated release, every morning, on demand)."""

from dagster import AssetSelection, define_asset_job

from assets.cache import CACHE_KEY


def build_cache_job():
    return define_asset_job("cache_warmup_job", selection=AssetSelection.assets(CACHE_KEY), tags={"ops/kind": "cache"},
                            description="Write the coming days' availability of every tenant and service into Redis.")
