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


def _http_markdown(h: dict) -> str:
    lines = [f"### CDN warm-up: coverage {h['coverage']:.1%}", "",
             f"{h['warmed']} of {h['requested']} requests warmed, {h['failed']} failed, {h['hits']} HIT on the "
             f"verification pass, {h['seconds']:.2f} s ({h['requests_per_second']} requests/s), {h['backoffs']} "
             f"back-offs; p95 of availability {h['p95_ms_cold']} ms cold, {h['p95_ms_warm']} ms warm."]
    lines += [f"- {e}" for e in h["errors"]]
    lines += [f"- MISSED: {u}" for u in h["missed"][:20]]
    lines += [f"- NOT CACHED (CDN configuration): {u}" for u in h["configuration_errors"][:20]]
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
            f"release that passes deploy validation and every morning. Then, through cache.http.base_url (the CDN), "
            f"the busiest tenants' availability, the configured URLs and the sitemap, requested twice: the second "
            f"pass reads the cache status (coverage = share answering HIT). Fails when a key could not be "
            f"written, Redis evicted keys meanwhile, or coverage is under cache.min_coverage; without {var} the "
            f"Redis part says so and the CDN is still warmed."),
    )
    @guarded
    def cache_warmup(context: AssetExecutionContext):
        from ops_project.cache.warmup import problems, run

        ops_cfg = context.resources.ops_config.load()
        resource = context.resources.cache
        client = resource.client()  # None without the URL: the report says so and the CDN is still warmed
        report = run(ops_cfg.cache, resource.source_path(), datetime.now(ops_cfg.tz).date(), redis_client=client,
                     redis_why=f"not configured: {var} (cache.redis_url_env) was not set where the code location "
                               f"loaded")
        r, h = report["redis"], report["http"] or {}
        metadata = {
            "redis": MetadataValue.md(_markdown(r) if "not_run" not in r else f"Redis: {r['not_run']}."),
            "http": MetadataValue.md(_http_markdown(h) if h and "not_run" not in h else f"HTTP: {h.get('not_run')}.")}
        if "not_run" not in r:
            metadata.update(redis_requested=r["requested"], redis_warmed=r["warmed"], redis_failed=r["failed"],
                            keys_per_second=r["keys_per_second"] or 0.0, evicted_keys=r["info_delta"]["evicted_keys"],
                            used_memory_after=r["info_after"]["used_memory"])
        if "coverage" in h:
            metadata.update(http_requested=h["requested"], http_warmed=h["warmed"], http_failed=h["failed"],
                            coverage=h["coverage"], p95_ms_cold=h["p95_ms_cold"] or 0.0,
                            p95_ms_warm=h["p95_ms_warm"] or 0.0)
        found = problems(report, ops_cfg.cache.min_coverage)
        if found:
            raise Failure(description="the cache warm-up is incomplete: " + " | ".join(found), metadata=metadata)
        alarm = r.get("expiry_alarm")
        return MaterializeResult(metadata=metadata, check_results=[AssetCheckResult(
            check_name=SPREAD_CHECK, passed=alarm is None, severity=AssetCheckSeverity.WARN,
            metadata={"why": alarm or ("expiries spread: no minute holds more than 5 % of the keys" if "not_run"
                                       not in r else "no Redis keys were warmed")})])

    return [cache_warmup]
