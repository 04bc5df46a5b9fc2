"""Alerting: failed runs of every job of this code location (the asset graph's own runs, backfills included),
and failed ERROR-severity asset checks, which a run-failure sensor alone does not see (a non-blocking check
can fail while its run succeeds); "resolved" when a problem clears.

Both read Dagster only through its public instance API (run records and each run's event log), so they work
the same on the SQLite storage of the embedded default and the PostgreSQL storage of production. What is a
problem, how bad, and when it clears is decided in ``ops_project.notify.rules``.
"""

from datetime import UTC, datetime

from dagster import (
    DagsterEventType,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.storage.tags import WILL_RETRY_TAG

from ops_project.notify.cursor import RunCursor
from ops_project.notify.rules import CheckFact, RunFact, StepFailure, check_alerts, run_failure_alert, run_key
from resources import NotifierResource

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
RUNS_PER_TICK = 200


def _innermost(error):
    while error is not None and error.cause is not None:
        error = error.cause
    return error


def _failures(instance, run_id: str) -> tuple[StepFailure, ...]:
    out = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = entry.dagster_event.event_specific_data
        error = data.error if data else None
        inner = _innermost(error)
        user = data.user_failure_data if data else None
        message = (user.description if user and user.description else None) or \
            (inner.message if inner else None) or entry.dagster_event.message or "step failed"
        classes = {e.cls_name for e in (error, inner) if e is not None}
        metadata = {k: getattr(v, "value", v) for k, v in (user.metadata if user else {}).items()}
        out.append(StepFailure(step=entry.dagster_event.step_key or "?",
                               error_class="DagsterAssetCheckFailedError" if "DagsterAssetCheckFailedError" in classes
                               else (inner.cls_name if inner else ""),
                               message=message, metadata=metadata))
    return tuple(out)


def run_fact(instance, run: DagsterRun, failure_message: str = "") -> RunFact:
    return RunFact(run_id=run.run_id, job=run.job_name, status=run.status.value,
                   partition=run.tags.get("dagster/partition"),
                   assets=tuple(sorted(k.to_user_string() for k in (run.asset_selection or ()))),
                   failures=_failures(instance, run.run_id) if run.status != DagsterRunStatus.SUCCESS else (),
                   failure_message=failure_message)


def check_facts(instance, run_id: str) -> list[CheckFact]:
    facts = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = entry.dagster_event.event_specific_data
        facts.append(CheckFact(asset=ev.asset_key.to_user_string(), check=ev.check_name, partition=ev.partition,
                               passed=ev.passed, severity=ev.severity.value, blocking=bool(ev.blocking),
                               description=ev.description or ""))
    return facts


def _log_problems(context, sender) -> None:
    for problem in sender.problems:
        context.log.warning(problem)


def build_alert_sensors() -> list:
    @run_failure_sensor(name="ops_run_failure_sensor", minimum_interval_seconds=30,
                        default_status=DefaultSensorStatus.RUNNING,
                        description="Alerts for every failed run in this code location: scheduled jobs, runs "
                                    "launched from the asset graph and backfills, including runs that fail before "
                                    "any check (no backup for the window, a region unreachable). One alert per "
                                    "problem (job or assets × window) per alerts.dedup_hours; not for runs that "
                                    "Dagster will retry.")
    def ops_run_failure_sensor(context: RunFailureSensorContext, notifier: NotifierResource):
        run = context.dagster_run
        if run.tags.get(WILL_RETRY_TAG) == "true":
            return SkipReason(f"run {run.run_id} failed but will be retried: no alert yet")
        fact = run_fact(context.instance, run, context.failure_event.message or "")
        alert = run_failure_alert(fact, notifier.run_link(run.run_id))
        if alert is None:
            return SkipReason(f"run {run.run_id} failed on blocking checks: ops_check_failure_sensor says which")
        sender = notifier.get()
        if not sender.enabled:
            return SkipReason(f"{alert.title}: no alert channel is configured (alerts.webhook_url_env, "
                              f"alerts.pagerduty or alerts.email), so nobody was told")
        sender.flush()
        said = sender.raise_problem(alert)
        _log_problems(context, sender)
        if not said:
            return SkipReason(f"{alert.title}: already said within alerts.dedup_hours (problem {alert.key})")
        return None

    @sensor(name="ops_check_failure_sensor", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
            description="Alerts for every failed ERROR-severity asset check (restore verification, verified RPO, DR "
                        "drill scenarios) in every finished run, once per problem per alerts.dedup_hours, and says "
                        "'resolved' when a check passes again or a failed job succeeds for the same window.")
    def ops_check_failure_sensor(context: SensorEvaluationContext, notifier: NotifierResource):
        now = datetime.now(UTC).timestamp()
        try:
            cursor = RunCursor.load(context.cursor)
        except ValueError as exc:  # read the last day again: the problem ledger keeps it from repeating alerts
            context.log.warning(f"{exc}: reading the runs of the last 24 hours again")
            cursor = RunCursor(after=now - 86400)
        if cursor is None:  # first look: alert on what finishes from now on
            return SensorResult(skip_reason=SkipReason("first look: runs that finish from now on will alert"),
                                cursor=RunCursor(after=now).dump())
        sender = notifier.get()
        if not sender.enabled:
            return SensorResult(skip_reason=SkipReason("no alert channel is configured (alerts.webhook_url_env, "
                                                       "alerts.pagerduty or alerts.email): nothing to send"),
                                cursor=RunCursor(after=now).dump())
        sent = sender.flush()
        records = context.instance.get_run_records(
            filters=RunsFilter(statuses=FINISHED,
                               updated_after=datetime.fromtimestamp(cursor.fetch_from, UTC).replace(tzinfo=None)),
            order_by="update_timestamp", ascending=True, limit=RUNS_PER_TICK)
        read = 0
        for rec in records:
            run = rec.dagster_run
            updated = rec.update_timestamp
            updated_at = (updated if updated.tzinfo else updated.replace(tzinfo=UTC)).timestamp()
            if cursor.seen(run.run_id):
                continue
            link = notifier.run_link(run.run_id)
            raised, cleared = check_alerts(check_facts(context.instance, run.run_id), link)
            for alert in raised:
                sent += sender.raise_problem(alert)
            for key in cleared:
                sent += sender.clear_problem(key, text=f"passed again in run {run.run_id}", link=link)
            if run.status == DagsterRunStatus.SUCCESS:
                fact = run_fact(context.instance, run)
                sent += sender.clear_problem(run_key(fact), text=f"run {run.run_id} succeeded", link=link)
            cursor.mark(run.run_id, updated_at)
            read += 1
        _log_problems(context, sender)
        if not sent:
            return SensorResult(skip_reason=SkipReason(f"read {read} finished run(s): nothing new to say"),
                                cursor=cursor.dump())
        return SensorResult(cursor=cursor.dump())

    return [ops_run_failure_sensor, ops_check_failure_sensor]


