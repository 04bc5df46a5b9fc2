"""The weekly DR drill, in the configured time zone."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule

from assets.drills import drill_partitions
from ops_project.config import OpsConfig


def build_drill_schedule(cfg: OpsConfig, job) -> ScheduleDefinition:
    weeks = drill_partitions(cfg)

    @schedule(name="dr_drill_schedule", cron_schedule=cfg.drills.cron, execution_timezone=cfg.timezone, job=job,
              default_status=DefaultScheduleStatus.RUNNING,
              description="Weekly: every DR scenario against what the configuration describes.")
    def dr_drill_schedule(context: ScheduleEvaluationContext):
        keys = weeks.get_partition_keys(current_time=context.scheduled_execution_time)
        if not keys:
            return []
        return [RunRequest(run_key=f"drill|{keys[-1]}", partition_key=keys[-1], tags={"ops/kind": "drill"})]

    return dr_drill_schedule
