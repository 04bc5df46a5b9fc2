"""Backups on the configured cron, retention daily; both in the configured time zone."""


from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from assets.partitions import backup_partition_key, first_window, last_window_key
from ops_project.config import OpsConfig

BACKUP_PRIORITY = "10"  # the queued run coordinator dequeues higher priorities first (default 0)


def build_backup_schedule(cfg: OpsConfig, job) -> ScheduleDefinition:
    databases = [db.name for db in cfg.databases]

    @schedule(name="backup_schedule", cron_schedule=cfg.backup.cron, execution_timezone=cfg.timezone, job=job,
              default_status=DefaultScheduleStatus.RUNNING,
              description="At the end of each backup window, back up every database for that window.")
    def backup_schedule(context: ScheduleEvaluationContext):
        window_key = last_window_key(cfg, context.scheduled_execution_time)
        if window_key is None:
            return SkipReason(f"no backup window has ended yet (first window starts {first_window(cfg)})")
        return [
            RunRequest(run_key=f"backup|{window_key}|{db}", partition_key=backup_partition_key(db, window_key),
                       # Ahead of queued restore tests and backfills: a backup's window closes, theirs do not.
                       tags={"ops/kind": "backup", "ops/database": db, "dagster/priority": BACKUP_PRIORITY})
            for db in databases
        ]

    return backup_schedule


def build_retention_schedule(cfg: OpsConfig, job) -> ScheduleDefinition:
    return ScheduleDefinition(name="backup_retention_schedule", cron_schedule=cfg.backup.retention_cron,
                              execution_timezone=cfg.timezone, job=job,
                              default_status=DefaultScheduleStatus.RUNNING,
                              description="Daily retention in every region.")


def build_rpo_schedule(cfg: OpsConfig, job) -> ScheduleDefinition:
    return ScheduleDefinition(name="verified_rpo_schedule", cron_schedule="15 * * * *",
                              execution_timezone=cfg.timezone, job=job, default_status=DefaultScheduleStatus.RUNNING,
                              description="Hourly: the age of every database's newest verified backup vs the RPO.")
