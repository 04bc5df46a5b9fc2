"""``capacity_metrics`` (a live measurement, hourly) and ``capacity_report`` (weekly): growth, forecasts,
days to each limit, cost, charts; an ERROR check when a resource reaches 80 % within ``capacity.alert_days``."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionsDefinition,
    asset,
)

from assets.backups import BACKUP_KEY, replica_key
from assets.guard import guarded
from assets.partitions import first_window
from ops_project.config import OpsConfig
from resources import region_key

METRICS_KEY = AssetKey("capacity_metrics")
REPORT_KEY = AssetKey("capacity_report")
HEADROOM_CHECK = "headroom"


def capacity_partitions(cfg: OpsConfig) -> TimeWindowPartitionsDefinition:
    """Weekly on ``capacity.cron`` (configured time zone), from two weeks before the first backup window. The
    week in progress is a partition too (``end_offset=1``): materialised on demand it reports as of now; the
    schedule reports each week when it ends."""
    return TimeWindowPartitionsDefinition(start=first_window(cfg) - timedelta(days=14), fmt="%Y-%m-%d",
                                          cron_schedule=cfg.capacity.cron, timezone=cfg.timezone, end_offset=1)


def _sources(context, cfg: OpsConfig):
    from ops_project.capacity.run import Sources

    res = context.resources
    return Sources(store_for=lambda name: getattr(res, region_key(name)).store(),
                   url_for=lambda db: res.databases.prepare(db.name),
                   redis_for=res.cache.client if cfg.cache is not None else None)


def _required(cfg: OpsConfig) -> set[str]:
    return {"ops_config", *(region_key(r.name) for r in cfg.regions), "databases",
            *({"cache"} if cfg.cache is not None else set())}


def _missing_md(missing: list[dict]) -> str:
    return "\n".join(f"- {m['what']}: {m['why']}" for m in missing) or "everything configured was measured"


def build_capacity_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    primary = cfg.primary.name

    @asset(
        key=METRICS_KEY,
        required_resource_keys=_required(cfg),
        kinds={"python"},
        group_name="capacity",
        owners=cfg.owners,
        op_tags={"ops/kind": "capacity"},
        description=(
            "A live measurement of every database (size, free pages, connections against max_connections, "
            "transaction-ID age against autovacuum_freeze_max_age, int4 sequences' share used), every region "
            "(bytes and objects stored, against its quota) and Redis (used_memory against maxmemory, evictions, "
            f"keys), appended as one small file under reports/capacity/metrics/ in {primary}: the points the "
            "weekly report forecasts from. A source that cannot be reached is named; the run fails only when "
            "nothing could be measured."),
    )
    @guarded
    def capacity_metrics(context: AssetExecutionContext) -> MaterializeResult:
        from ops_project.capacity.run import sample

        ops_cfg = context.resources.ops_config.load()
        sources = _sources(context, ops_cfg)
        primary_store = sources.store_for(primary)
        doc, key = sample(ops_cfg, primary_store, sources, now=datetime.now(UTC))
        for m in doc["missing"]:
            context.log.warning(f"not measured: {m['what']}: {m['why']}")
        metadata = {"samples": len(doc["samples"]), "missing_sources": len(doc["missing"]),
                    "missing": MetadataValue.md(_missing_md(doc["missing"]))}
        if not doc["samples"]:
            raise Failure(description="nothing could be measured: " + "; ".join(
                f"{m['what']}: {m['why']}" for m in doc["missing"]), metadata=metadata)
        return MaterializeResult(metadata={**metadata, "location": MetadataValue.path(primary_store.describe(key))
                                           if key else "not stored"})

    @asset(
        key=REPORT_KEY,
        deps=[AssetDep(BACKUP_KEY, partition_mapping=AllPartitionMapping()),
              *(AssetDep(replica_key(r.name), partition_mapping=AllPartitionMapping()) for r in cfg.secondaries),
              METRICS_KEY],
        partitions_def=capacity_partitions(cfg),
        required_resource_keys=_required(cfg),
        check_specs=[AssetCheckSpec(HEADROOM_CHECK, asset=REPORT_KEY, description=(
            f"No resource reaches 80 % of its limit within capacity.alert_days ({cfg.capacity.alert_days} days), "
            f"and none is over it"))],
        kinds={"python"},
        group_name="capacity",
        owners=cfg.owners,
        op_tags={"ops/kind": "capacity"},
        description=(
            "The weekly capacity report: every database, region and cache with its use, limit, growth per week, "
            "days to 80 % and 100 % (a least-squares trend fitted after any level shift, with the weekly cycle "
            "modelled, R² shown as confidence; too little history says so instead of a number), the error of the "
            "forecasts made 1 and 4 weeks earlier, an action where one is due, the cost per region, and a chart "
            f"per resource within capacity.horizon_days. Stored under reports/capacity/<week>/ in {primary}. "
            "History comes from the backup manifests and the capacity_metrics measurements; the current week "
            "also measures now, a backfilled week reads only what was stored by then."),
    )
    @guarded
    def capacity_report(context: AssetExecutionContext) -> MaterializeResult:
        from ops_project.capacity.report import headroom_problems, markdown
        from ops_project.capacity.run import report, sample

        ops_cfg = context.resources.ops_config.load()
        sources = _sources(context, ops_cfg)
        primary_store = sources.store_for(primary)
        window = context.partition_time_window
        now = datetime.now(UTC)
        as_of = min(now, window.end.astimezone(UTC))
        measured = None
        if now - window.end.astimezone(UTC) <= timedelta(days=1):  # the current week: measure now as well
            measured, _key = sample(ops_cfg, primary_store, sources, now=now)
            as_of = now
        else:
            context.log.info(f"week {context.partition_key} ended over a day ago: reported from what was stored "
                             f"by {as_of.isoformat()}, without measuring now")
        rep, images, key = report(ops_cfg, primary_store, as_of=as_of, week=context.partition_key,
                                  measured=measured, log=context.log.warning)
        problems = headroom_problems(rep)
        rows = [r for r in rep["resources"] if r["kind"] != "table_rows"]
        due = [r["forecast"]["days_to_80"] for r in rows if r["forecast"]["days_to_80"] is not None]
        metadata = {
            "report": MetadataValue.md(markdown(rep, images)),
            "location": MetadataValue.path(primary_store.describe(key)),
            "resources": len(rows),
            "forecastable": sum(not r["forecast"]["insufficient_data"] for r in rows),
            "within_horizon": sum(r["within_horizon"] for r in rows),
            "alerting": len(problems),
            "charts": len(images),
            "missing_sources": len(rep["missing"]),
            "monthly_storage_cost": round(sum(c.get("monthly_storage", 0) for c in rep["costs"]), 4),
        }
        if due:
            metadata["min_days_to_80"] = min(due)
        return MaterializeResult(metadata=metadata, check_results=[AssetCheckResult(
            check_name=HEADROOM_CHECK, passed=not problems, severity=AssetCheckSeverity.ERROR,
            description="; ".join(problems) if problems else
            f"no resource reaches 80 % within {ops_cfg.capacity.alert_days} days",
            metadata={"resources": MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")})])

    return [capacity_metrics, capacity_report]
