"""``point_in_time_restore_schedule``: the point-in-time restore test, on ``continuous.restore_test_cron``."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from ops_project.config import OpsConfig


def build_continuous_schedules(cfg: OpsConfig, pitr_job) -> list[ScheduleDefinition]:
    if cfg.continuous is None:
        return []
    return [ScheduleDefinition(name="point_in_time_restore_schedule", cron_schedule=cfg.continuous.restore_test_cron,
                               execution_timezone=cfg.timezone, job=pitr_job,
                               default_status=DefaultScheduleStatus.RUNNING,
                               description="Restore each continuous replica to a random moment of the last day and "
                                           "to its newest position, and prove both with the marker rows.")]
