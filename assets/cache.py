"""``cache_warmup``: availability written into Redis after a validated release, and every morning."""

from datetime import datetime

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.guard import guarded
from assets.releases import DEPLOY_KEY
from ops_project.config import OpsConfig

CACHE_KEY = AssetKey("cache_warmup")
SPREAD_CHECK = "expiry_spread"


def _markdown(r: dict) -> str:
    from ops_project.common.markdown import table

    d = r["info_delta"]
    lines = [f"### Redis warm-up: {r['warmed']} of {r['requested']} keys", "",
             f"{r['tenants']} tenants, {r['days'][0]} to {r['days'][1]}, {r['seconds']:.2f} s "
             f"({r['keys_per_second']} keys/s), TTLs {r['ttl_range'][0]}–{r['ttl_range'][1]} s.", "",
             table(["", "before", "after", "change"],
                   [(k, r["info_before"][k], r["info_after"][k], d[k]) for k in d])]
    busiest = sorted(r["expiry_per_minute"].items(), key=lambda kv: -kv[1])[:5]
    if busiest:
        lines += ["", "Busiest expiry minutes (UTC):", "", table(["minute", "keys"], sorted(busiest))]
    for note in (*r["errors"], r.get("evictions"), r.get("expiry_alarm")):
        if note:
            lines += ["", f"- {note}"]
    return "\n".join(lines)


def build_cache_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    if cfg.cache is None:
        return []
    var = cfg.cache.redis_url_env

    @asset(
        key=CACHE_KEY,
        deps=[DEPLOY_KEY] if cfg.releases else [],
        required_resource_keys={"cache", "ops_config"},
        check_specs=[AssetCheckSpec(SPREAD_CHECK, asset=CACHE_KEY, description=(
            "No more than 5 % of the warmed keys expire in the same minute (a warning: their misses would reach "
            "the database together)"))],
        kinds={"redis", "python"},
        group_name="cache",
        owners=cfg.owners,
        op_tags={"ops/kind": "cache"},
        description=(
            f"Every tenant x service x day of the next {cfg.cache.availability_days} days of availability, "
            f"computed from the booking database as the API serves it, written into Redis under "
            f"{cfg.cache.key_prefix}avail:<tenant>:<service>:<day> with TTLs spread by ttl_jitter. Runs after each "
            f"release that passes deploy validation and every morning. Fails when a key could not be written or "
            f"Redis evicted keys meanwhile; without {var} set there is no Redis to warm, and it fails saying so."),
    )
    @guarded
    def cache_warmup(context: AssetExecutionContext):
        from ops_project.cache.warm_redis import warm

        settings = context.resources.cache
        client = settings.client()
        if client is None:
            raise Failure(description=f"no Redis to warm: the environment variable {var} (cache.redis_url_env) was "
                                      f"not set where the code location loaded; set it and reload the location. "
                                      f"HTTP/CDN warming is not in this version yet.")
        ops_cfg = context.resources.ops_config.load()
        report = warm(settings.source_path(), client, ops_cfg.cache, datetime.now(ops_cfg.tz).date())
        metadata = {
            "requested": report["requested"], "warmed": report["warmed"], "failed": report["failed"],
            "seconds": report["seconds"], "keys_per_second": report["keys_per_second"] or 0.0,
            "evicted_keys": report["info_delta"]["evicted_keys"],
            "used_memory_after": report["info_after"]["used_memory"],
            "report": MetadataValue.md(_markdown(report)),
        }
        if report["failed"] or report.get("evictions"):
            why = report.get("evictions") or f"{report['failed']} keys failed: {'; '.join(report['errors'])}"
            raise Failure(description=f"the Redis warm-up is incomplete: {why}", metadata=metadata)
        alarm = report.get("expiry_alarm")
        return MaterializeResult(metadata=metadata, check_results=[AssetCheckResult(
            check_name=SPREAD_CHECK, passed=alarm is None, severity=AssetCheckSeverity.WARN,
            metadata={"why": alarm or "expiries spread: no minute holds more than 5 % of the keys"})])

    return [cache_warmup]
