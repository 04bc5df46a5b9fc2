"""``slow_query_report``: one database's statements of one day, ranked and compared with the day before."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
)

from assets.guard import guarded
from assets.partitions import first_window
from assets.releases import recorded_validations
from ops_project.config import OpsConfig
from resources import region_key

QUERIES_KEY = AssetKey("slow_query_report")


def analysed_databases(cfg: OpsConfig) -> list[str]:
    """The databases that have a query log or pg_stat_statements configured, in configuration order."""
    named = {s.database for s in cfg.queries.sources}
    return [db.name for db in cfg.databases if db.name in named]


def query_partitions(cfg: OpsConfig) -> MultiPartitionsDefinition:
    """Day (configured time zone) × database; days from 30 before the backup history's start, to backfill."""
    start = (first_window(cfg) - timedelta(days=30)).date()
    return MultiPartitionsDefinition({
        "database": StaticPartitionsDefinition(analysed_databases(cfg)),
        "day": DailyPartitionsDefinition(start_date=start.isoformat(), timezone=cfg.timezone),
    })


def _stat_metadata(stat: dict | None) -> dict:
    """pg_stat_statements' figures for Dagster's plots: its time, the logs' share of it, entries thrown away."""
    if not stat or stat.get("discarded"):
        return {}
    out = {"stat_statements_seconds": round(stat["total_ms"] / 1000, 3), "stat_statements_dealloc": stat["dealloc"]}
    if (stat.get("coverage") or {}).get("share") is not None:
        out["log_coverage"] = stat["coverage"]["share"]
    return out


def deployments(instance) -> list:
    """Every release deploy validation recorded, with when: what a regression is tied to."""
    from ops_project.queries.release_tie import Deployment

    return [Deployment(outcome.tag, datetime.fromtimestamp(at, UTC), outcome.passed)
            for at, outcome in recorded_validations(instance, limit=500)]


def build_query_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    analysed = analysed_databases(cfg)
    if not analysed:
        return []
    primary = cfg.primary.name
    engines = {d.engine for d in cfg.databases if d.name in analysed}
    counted = {s.database for s in cfg.queries.sources if s.kind == "pg_stat_statements"}

    @asset(
        key=QUERIES_KEY,
        partitions_def=query_partitions(cfg),
        required_resource_keys={"ops_config", region_key(primary), "databases"},
        kinds={*engines, "python"},
        group_name="queries",
        owners=cfg.owners,
        op_tags={"ops/kind": "queries"},
        description=(
            "One database's statements of one day, from its PostgreSQL logs (stderr, csvlog, jsonlog) or SQLite "
            "query logs, and from pg_stat_statements (a snapshot of the live server per run, diffed against the "
            "last one stored beside the reports), grouped by fingerprint (the same query whatever its literals, "
            "parameters or IN-list length), ranked by total time, and compared with the day before: new and gone "
            "query shapes, and regressions (one-sided Mann-Whitney U, p95 over regression_factor). Stored as JSON "
            f"under reports/queries/<database>/<day>.json in {primary}. A day whose logs hold no statement fails."),
    )
    @guarded
    def slow_query_report(context: AssetExecutionContext) -> MaterializeResult:
        from ops_project.queries.daily import hinter, make_daily, markdown

        keys = context.partition_key.keys_by_dimension
        database, day = keys["database"], keys["day"]
        ops_cfg = context.resources.ops_config.load()
        store = getattr(context.resources, region_key(primary)).store()
        db = ops_cfg.database(database)
        url = context.resources.databases.prepare(database)  # the URL; a demo file made
        rep, location = make_daily(store, ops_cfg.queries, database, day, ops_cfg.tz,
                                   deployments(context.instance) if ops_cfg.releases else [],
                                   stat_statements_url=url if database in counted else None,
                                   explain=hinter(db.engine, url=url, path=db.path))
        parsed = rep["statements"] - rep["unparsed_statements"]
        return MaterializeResult(metadata={
            "statements": rep["statements"], "query_shapes": rep["fingerprints"],
            "total_seconds": round(rep["total_ms"] / 1000, 3),
            "parsed_share": round(parsed / rep["statements"], 4) if rep["statements"] else 0.0,
            "index_hints": len(rep["hints"]),
            "new_shapes": len(rep["new"]), "gone_shapes": len(rep["gone"]), "regressed": len(rep["regressed"]),
            **_stat_metadata(rep.get("pg_stat_statements")),
            "location": MetadataValue.path(location),
            "report": MetadataValue.md(markdown(rep)),
        })

    return [slow_query_report]
