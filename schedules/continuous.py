"""``point_in_time_restore_schedule``: the point-in-time restore test, on ``continuous.restore_test_cron``; and
``continuous_base_backup_schedule``: pgBackRest's full backups, on ``continuous.base_backup_cron``."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from ops_project.config import OpsConfig


def build_continuous_schedules(cfg: OpsConfig, jobs: list) -> list[ScheduleDefinition]:
    if cfg.continuous is None:
        return []
    by_name = {j.name: j for j in jobs}
    base = by_name.get("continuous_base_backup_job")
    pitr_job = by_name["point_in_time_restore_job"]
    return [*([ScheduleDefinition(name="continuous_base_backup_schedule", cron_schedule=cfg.continuous.base_backup_cron,
                                  execution_timezone=cfg.timezone, job=base,
                                  default_status=DefaultScheduleStatus.RUNNING,
                                  description="A full pgBackRest backup of each WAL-archived PostgreSQL cluster into "
                                              "every region: restores to a moment start from one.")]
              if base is not None else []),
            ScheduleDefinition(name="point_in_time_restore_schedule", cron_schedule=cfg.continuous.restore_test_cron,
                               execution_timezone=cfg.timezone, job=pitr_job,
                               default_status=DefaultScheduleStatus.RUNNING,
                               description="Restore each continuous replica to a random moment of the last day and "
                                           "to its newest position, and prove both with the marker rows.")]
