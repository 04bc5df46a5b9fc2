"""After midnight in the configured time zone: yesterday's slow-query report of every analysed database."""

from datetime import timedelta

from dagster import DefaultScheduleStatus, MultiPartitionKey, RunRequest, ScheduleEvaluationContext, schedule

from assets.queries import analysed_databases
from ops_project.config import OpsConfig


def build_query_schedule(cfg: OpsConfig, job):
    databases = analysed_databases(cfg)

    @schedule(name="slow_query_schedule", cron_schedule="15 0 * * *", execution_timezone=cfg.timezone, job=job,
              default_status=DefaultScheduleStatus.RUNNING,
              description="Daily at 00:15: the day before's slow-query report of every database with a query log.")
    def slow_query_schedule(context: ScheduleEvaluationContext):
        day = (context.scheduled_execution_time.astimezone(cfg.tz) - timedelta(days=1)).date().isoformat()
        # no per-database tag: a report reads the database's statistics and logs, and never holds its backup
        return [RunRequest(run_key=f"queries|{day}|{db}", partition_key=MultiPartitionKey({"database": db, "day": day}),
                           tags={"ops/kind": "queries"}) for db in databases]

    return slow_query_schedule
