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
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, WILL_RETRY_TAG

from assets.partitions import range_ends
from ops_project.backups.batch import label
from ops_project.notify.cursor import RunCursor
from ops_project.notify.rules import CheckFact, RunFact, StepFailure, check_alerts, run_failure_alert, run_key
from resources import NotifierResource

FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
RUNS_PER_TICK = 200  # runs read per tick; the rest wait for the next one
PAGE = 200
MAX_PAGES = 50  # pages of already-read runs skipped per tick (a cancelled backfill ends hundreds at once)


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


def run_partition(run: DagsterRun) -> str | None:
    """What a run covers, as its alert's problem names it: its partition, or for a run of a range of partitions
    its range. A scheduled batch (databases ``first..last`` of one window) is named by its databases alone, as
    ``ops/batch`` names it: one batch's failure is never merged with another batch's, nor said resolved when
    another batch succeeds; it is resolved when the same batch succeeds again (a re-run, or the next window)."""
    if "dagster/partition" in run.tags:
        return run.tags["dagster/partition"]
    start, end = run.tags.get(ASSET_PARTITION_RANGE_START_TAG), run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if not (start and end):
        return None
    if start == end:
        return start
    ends = range_ends(run.tags)
    if ends and ends[0][1] and ends[0][1] == ends[1][1]:  # databases of one window: the batch's own name
        return label([ends[0][0], ends[1][0]])
    return f"{start}...{end}"


def run_fact(instance, run: DagsterRun, failure_message: str = "") -> RunFact:
    return RunFact(run_id=run.run_id, job=run.job_name, status=run.status.value,
                   partition=run_partition(run),
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


def _timestamp(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _ours(context, run: DagsterRun) -> bool:
    """A run of this code location (runs executed in-process, as tests do, carry no origin and count as ours)."""
    origin = run.remote_job_origin
    if origin is None or context.repository_name is None:
        return True
    location = context.code_location_origin.location_name if context.code_location_origin else None
    return (origin.repository_origin.repository_name == context.repository_name
            and origin.repository_origin.code_location_origin.location_name == location)


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
                                    "Dagster will retry. ops_check_failure_sensor reads every finished run too, so "
                                    "a failure this sensor misses is still said.")
    def ops_run_failure_sensor(context: RunFailureSensorContext, notifier: NotifierResource):
        run = context.dagster_run
        if run.tags.get(WILL_RETRY_TAG) == "true":
            context.log.info(f"run {run.run_id} failed but will be retried: no alert yet")
            return None  # a SkipReason would end the tick here and delay every failure behind this one
        fact = run_fact(context.instance, run, context.failure_event.message or "")
        alert = run_failure_alert(fact, notifier.run_link(run.run_id))
        if alert is None:
            context.log.info(f"run {run.run_id} failed on blocking checks: ops_check_failure_sensor says which")
            return None
        sender = notifier.get()
        if not sender.enabled:
            context.log.info(f"{alert.title}: no alert channel is configured (alerts.webhook_url_env, "
                             f"alerts.pagerduty or alerts.email), so nobody was told")
            return None
        sender.flush()
        record = context.instance.get_run_record_by_id(run.run_id)
        ended = record.end_time if record else None
        said = sender.raise_problem(alert, at=ended)
        _log_problems(context, sender)
        if not said:
            context.log.info(f"{alert.title}: already said within alerts.dedup_hours (problem {alert.key})")
        return None

    @sensor(name="ops_check_failure_sensor", minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
            description="Reads every finished run of this code location: alerts for every failed ERROR-severity "
                        "asset check (restore verification, verified RPO, DR drill scenarios) and every failed or "
                        "canceled run, once per problem per alerts.dedup_hours, and says 'resolved' when a check "
                        "passes again or a job succeeds again for the same window.")
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
        read = 0
        fetch_from = cursor.fetch_from
        for _ in range(MAX_PAGES):
            page = context.instance.get_run_records(
                filters=RunsFilter(statuses=FINISHED,
                                   updated_after=datetime.fromtimestamp(fetch_from, UTC).replace(tzinfo=None)),
                order_by="update_timestamp", ascending=True, limit=PAGE)
            for rec in page:
                if read >= RUNS_PER_TICK:
                    break
                run = rec.dagster_run
                if cursor.seen(run.run_id):
                    continue
                if _ours(context, run):
                    sent += _read_run(context, sender, notifier, rec)
                cursor.mark(run.run_id, _timestamp(rec.update_timestamp))
                read += 1
            if len(page) < PAGE or read >= RUNS_PER_TICK:
                break
            fetch_from = _timestamp(page[-1].update_timestamp)  # a full page of runs already read: page on
        _log_problems(context, sender)
        if not sent:
            return SensorResult(skip_reason=SkipReason(f"read {read} finished run(s): nothing new to say"),
                                cursor=cursor.dump())
        return SensorResult(cursor=cursor.dump())

    return [ops_run_failure_sensor, ops_check_failure_sensor]


def _read_run(context, sender, notifier: NotifierResource, rec) -> int:
    """Say what one finished run tells: its failed checks, its failure, and what it resolved."""
    run = rec.dagster_run
    ended = rec.end_time or _timestamp(rec.update_timestamp)
    link = notifier.run_link(run.run_id)
    sent = 0
    raised, cleared = check_alerts(check_facts(context.instance, run.run_id), link)
    for alert in raised:
        sent += sender.raise_problem(alert, at=ended)
    for key in cleared:
        sent += sender.clear_problem(key, text=f"passed again in run {run.run_id}", link=link, since=ended)
    fact = run_fact(context.instance, run)
    if run.status == DagsterRunStatus.SUCCESS:
        sent += sender.clear_problem(run_key(fact), text=f"run {run.run_id} succeeded", link=link, since=ended)
    elif run.tags.get(WILL_RETRY_TAG) != "true":
        alert = run_failure_alert(fact, link)  # the same problem the run-failure sensor raises: said once
        if alert is not None:
            sent += sender.raise_problem(alert, at=ended)
    return sent
