"""The morning warm-up, before the booking peak (``cache.cron``, configured time zone)."""

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from ops_project.config import OpsConfig


def build_cache_schedule(cfg: OpsConfig, job):
    @schedule(name="cache_warmup_schedule", cron_schedule=cfg.cache.cron, execution_timezone=cfg.timezone, job=job,
              default_status=DefaultScheduleStatus.RUNNING,
              description=f"Warm the availability cache at {cfg.cache.cron} ({cfg.timezone}), before the morning's "
                          f"bookings.")
    def cache_warmup_schedule(context: ScheduleEvaluationContext):
        at = context.scheduled_execution_time.astimezone(cfg.tz).strftime("%Y-%m-%dT%H:%M")
        return RunRequest(run_key=f"cache|morning|{at}", tags={"ops/kind": "cache", "ops/trigger": "schedule"})

    return cache_warmup_schedule
