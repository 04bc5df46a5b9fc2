"""Backups on the configured cron, retention daily; both in the configured time zone."""


from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from assets.partitions import backup_partition_key, database_names, first_window, last_window_key
from ops_project.backups.batch import chunks, label
from ops_project.config import OpsConfig
from sensors.fleet import sync_tenants

BACKUP_PRIORITY = "10"  # the queued run coordinator dequeues higher priorities first (default 0)


def backup_requests(cfg: OpsConfig, window_key: str, names: list[str]) -> list[RunRequest]:
    """The runs one tick asks for: one per batch of ``backup.batch_size`` of ``names`` (a range of the database
    dimension in one window, in the partitions' order), or one per database when batches hold one."""
    requests = []
    for batch in chunks(names, cfg.backup.batch_size):
        # Ahead of queued restore tests and backfills: a backup's window closes, theirs do not.
        tags = {"ops/kind": "backup", "dagster/priority": BACKUP_PRIORITY}
        if len(batch) == 1:
            requests.append(RunRequest(run_key=f"backup|{window_key}|{batch[0]}",
                                       partition_key=backup_partition_key(batch[0], window_key),
                                       tags={**tags, "ops/database": batch[0]}))
            continue
        first, last = batch[0], batch[-1]
        requests.append(RunRequest(run_key=f"backup|{window_key}|{first}..{last}", tags={
            **tags, "ops/batch": label(batch),  # one run per batch at a time (deploy/dagster.yaml)
            ASSET_PARTITION_RANGE_START_TAG: str(backup_partition_key(first, window_key)),
            ASSET_PARTITION_RANGE_END_TAG: str(backup_partition_key(last, window_key))}))
    return requests


def build_backup_schedule(cfg: OpsConfig, job) -> ScheduleDefinition:
    @schedule(name="backup_schedule", cron_schedule=cfg.backup.cron, execution_timezone=cfg.timezone, job=job,
              default_status=DefaultScheduleStatus.RUNNING,
              description="At the end of each backup window, back up every database for that window, in batches "
                          "of backup.batch_size databases per run.")
    def backup_schedule(context: ScheduleEvaluationContext):
        window_key = last_window_key(cfg, context.scheduled_execution_time)
        if window_key is None:
            return SkipReason(f"no backup window has ended yet (first window starts {first_window(cfg)})")
        if cfg.discovers:  # a tenant created since the discovery sensor last looked is backed up now too
            try:
                synced = sync_tenants(cfg, context.instance, remove=False)
            except Exception as exc:  # noqa: BLE001 - the known tenants are still backed up; the sensor reads red
                context.log.error(f"tenant discovery failed at the tick ({type(exc).__name__}: {exc}); backing "
                                  f"up the tenants already known")
            else:
                context.log.info(synced.summary())
                for trouble in [*synced.found.unavailable, *synced.found.problems]:
                    context.log.error(f"tenant discovery: {trouble}")
        return backup_requests(cfg, window_key,
                               database_names(cfg, context.instance if cfg.discovers else None))

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
