"""Alerting: failed runs of every ops job, and failed ERROR-severity asset checks (which a run-failure
sensor alone does not see: a non-blocking check can fail while its run succeeds)."""

from dagster import (
    DagsterEventType,
    DefaultSensorStatus,
    EventRecordsFilter,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.storage.tags import WILL_RETRY_TAG

from ops_project.notify.notifier import Alert, NotifyError
from resources import NotifierResource


def build_alert_sensors(jobs: list) -> list:
    @run_failure_sensor(name="ops_run_failure_sensor", monitored_jobs=jobs, minimum_interval_seconds=30,
                        default_status=DefaultSensorStatus.RUNNING,
                        description="Alerts on the webhook for every failed run of an ops job (not for runs that "
                                    "Dagster will retry).")
    def ops_run_failure_sensor(context: RunFailureSensorContext, notifier: NotifierResource):
        run = context.dagster_run
        if run.tags.get(WILL_RETRY_TAG) == "true":
            return SkipReason(f"run {run.run_id} failed but will be retried: no alert yet")
        partition = run.tags.get("dagster/partition")
        errors = []
        for event in context.get_step_failure_events():
            error = event.event_specific_data.error if event.event_specific_data else None
            while error is not None and error.cause is not None:  # the user's error, not Dagster's wrapper
                error = error.cause
            errors.append(f"• {event.step_key}: {(error.message.strip() if error else event.message)[:600]}")
        text = "\n".join(errors[:5]) or (context.failure_event.message or "the run failed")
        sender = notifier.get()
        sender.flush()
        try:
            sender.send(Alert(key=f"run-failure:{run.run_id}",
                              title=f"{run.job_name} failed" + (f" for {partition}" if partition else ""),
                              text=text, link=notifier.run_link(run.run_id)))
        except NotifyError as exc:  # kept in the outbox; the next tick of either alert sensor retries it
            context.log.warning(str(exc))

    @sensor(name="ops_check_failure_sensor", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
            description="Alerts on the webhook for every failed ERROR-severity asset check (restore verification, "
                        "verified RPO, DR drill scenarios).")
    def ops_check_failure_sensor(context: SensorEvaluationContext, notifier: NotifierResource):
        records = context.instance.get_event_records(
            EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION,
                               after_cursor=int(context.cursor) if context.cursor else None),
            limit=500, ascending=context.cursor is not None)
        if context.cursor is None:  # first look: remember where history ends, alert on what comes next
            newest = max((r.storage_id for r in records), default=0)
            return SensorResult(skip_reason=SkipReason("first look: only new check failures will alert"),
                                cursor=str(newest))
        sender = notifier.get()
        sent = sender.flush()
        for rec in records:
            evaluation = rec.event_log_entry.dagster_event.event_specific_data
            if evaluation.passed or evaluation.severity.value != "ERROR":
                continue
            key = evaluation.asset_check_key
            description = evaluation.description or ""
            partition = evaluation.partition or ""
            try:
                sent += sender.send(Alert(
                    key=f"check:{key.asset_key.to_user_string()}:{key.name}:{rec.run_id}",
                    title=f"check {key.name} failed on {key.asset_key.to_user_string()}"
                          + (f" for {partition}" if partition else ""),
                    text=description[:1500], link=notifier.run_link(rec.run_id)))
            except NotifyError as exc:  # kept in the outbox for the next tick
                context.log.warning(str(exc))
        cursor = str(max((r.storage_id for r in records), default=int(context.cursor)))
        if not sent:
            return SensorResult(skip_reason=SkipReason("no new failed checks"), cursor=cursor)
        return SensorResult(cursor=cursor)

    return [ops_run_failure_sensor, ops_check_failure_sensor]
