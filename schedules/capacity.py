"""The weekly capacity report (``capacity.cron``) and the live measurements between (``capacity.sample_cron``),
in the configured time zone."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from assets.capacity import capacity_partitions
from ops_project.config import OpsConfig


def build_capacity_schedules(cfg: OpsConfig, report_job, metrics_job) -> list:
    weeks = capacity_partitions(cfg)

    @schedule(name="capacity_report_schedule", cron_schedule=cfg.capacity.cron, execution_timezone=cfg.timezone,
              job=report_job, default_status=DefaultScheduleStatus.RUNNING,
              description=f"Weekly at {cfg.capacity.cron} ({cfg.timezone}): the week just ended's capacity report.")
    def capacity_report_schedule(context: ScheduleEvaluationContext):
        keys = weeks.get_partition_keys(current_time=context.scheduled_execution_time)
        if len(keys) < 2:
            return []
        ended = keys[-2]  # the last key is the week that starts now (end_offset=1)
        return [RunRequest(run_key=f"capacity|{ended}", partition_key=ended, tags={"ops/kind": "capacity"})]

    @schedule(name="capacity_metrics_schedule", cron_schedule=cfg.capacity.sample_cron,
              execution_timezone=cfg.timezone, job=metrics_job, default_status=DefaultScheduleStatus.RUNNING,
              description=f"At {cfg.capacity.sample_cron} ({cfg.timezone}): measure every database, region and "
                          f"Redis (the points the weekly report forecasts from).")
    def capacity_metrics_schedule(context: ScheduleEvaluationContext):
        at = context.scheduled_execution_time.astimezone(cfg.tz).strftime("%Y-%m-%dT%H:%M")
        return RunRequest(run_key=f"capacity-metrics|{at}", tags={"ops/kind": "capacity"})

    return [capacity_report_schedule, capacity_metrics_schedule]
