"""``dr_drill``: the weekly disaster-recovery rehearsal, one partition per week."""

from datetime import timedelta

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

from assets.guard import guarded
from assets.partitions import first_window
from assets.verification import RESTORE_KEY
from ops_project.config import OpsConfig
from ops_project.notify.rules import REPORTED_BY_CHECKS
from resources import region_key

DRILL_KEY = AssetKey("dr_drill")


def drill_partitions(cfg: OpsConfig) -> TimeWindowPartitionsDefinition:
    """Weekly, from ``drills.start``, else two weeks before the first backup window: the week that holds the
    first backup is always a complete partition."""
    start = cfg.drills.start or first_window(cfg) - timedelta(days=14)
    return TimeWindowPartitionsDefinition(start=start, fmt="%Y-%m-%d", cron_schedule=cfg.drills.cron,
                                          timezone=cfg.timezone)


def scenario_numbers(summary, report) -> dict:
    """Achieved RTO and RPO where there is one; where nothing was restored, no number, and why."""
    numbers = {"rto_objective_seconds": report.rto_objective_seconds,
               "rpo_objective_minutes": report.rpo_objective_minutes}
    if summary.worst_rto_seconds is not None:
        numbers["rto_achieved_seconds"] = summary.worst_rto_seconds
    if summary.worst_rpo_minutes is not None:
        numbers["rpo_achieved_minutes"] = summary.worst_rpo_minutes
    if summary.worst_rto_seconds is None and summary.worst_rpo_minutes is None:
        numbers["not_measured"] = "nothing was restored, so there is no RTO or RPO to report"
    return numbers


def build_drill_assets(cfg: OpsConfig) -> list[AssetsDefinition]:
    survivors = [r.name for r in cfg.secondaries]
    scenarios = cfg.drill_scenarios

    @asset(
        key=DRILL_KEY,
        deps=[AssetDep(RESTORE_KEY, partition_mapping=AllPartitionMapping())],
        partitions_def=drill_partitions(cfg),
        required_resource_keys={"ops_config", "encryption", *(region_key(n) for n in survivors),
                                "databases"},
        check_specs=[AssetCheckSpec(f"scenario_{s}", asset=DRILL_KEY, description=f"the {s} scenario met the "
                                    f"RTO and RPO objectives") for s in scenarios],
        kinds={"python"},
        group_name="disaster_recovery",
        owners=cfg.owners,
        op_tags={"ops/kind": "drill"},
        description=(
            "The weekly DR drill. region_loss: the primary region is treated as gone and every database is restored "
            "from a secondary region. corrupt_latest: the newest backup is corrupted (on a copy) and the drill must "
            "catch it and fall back to the previous good one. database_loss: the live database is gone; it is "
            "restored into a fresh location and the application's read queries run against it. Each reports the "
            "achieved RTO and RPO against the objectives. Works only on copies and scratch space: the live "
            "databases and the primary region are never touched. The report is kept under drills/ in the DR region."),
    )
    @guarded
    def dr_drill(context: AssetExecutionContext):
        from ops_project.backups.drills import DrillContext, report_region, run_drill, store_report

        ops_cfg = context.resources.ops_config.load()
        encryption = context.resources.encryption
        ctx = DrillContext(
            cfg=ops_cfg,
            stores={n: getattr(context.resources, region_key(n)).store() for n in survivors},
            identities=encryption.identities(),
            pg_server_url=lambda db: context.resources.databases.server_for_scratch(db.name),
            database_url=lambda db: context.resources.databases.prepare(db.name),
            scratch_dir=ops_cfg.restore.scratch_dir,
        )
        report = run_drill(ctx, context.partition_key, scenarios)
        dr_region = report_region(ops_cfg)
        location = store_report(ctx.stores[dr_region], report) if dr_region else "(no secondary region)"
        (context.log.info if report.passed else context.log.error)(report.markdown())
        checks = []
        for scenario in scenarios:
            summary = report.summary(scenario)
            checks.append(AssetCheckResult(
                asset_key=DRILL_KEY, check_name=f"scenario_{scenario}", passed=summary.passed,
                severity=AssetCheckSeverity.ERROR, description=summary.description[:1000],
                metadata=scenario_numbers(summary, report)))
        per_scenario = {f"{s}_{k}": v for s in scenarios for k, v in
                        scenario_numbers(report.summary(s), report).items() if k.endswith(("_achieved_seconds",
                                                                                         "_achieved_minutes"))}
        yield MaterializeResult(  # the achieved RTO and RPO per scenario are numbers: they plot week over week
            metadata={"verdict": "passed" if report.passed else "FAILED", "report": MetadataValue.md(report.markdown()),
                      "report_location": MetadataValue.path(location), **per_scenario},
            check_results=checks)
        if not report.passed:  # the report is recorded above, and the run fails: a failed drill must not end green
            failed = [s for s in scenarios if not report.summary(s).passed]
            raise Failure(description=f"DR drill {context.partition_key} FAILED: {', '.join(failed)} did not meet the "
                                      f"objectives; the report is at {location}",
                          metadata={REPORTED_BY_CHECKS: True, "report_location": location})

    return [dr_drill]
