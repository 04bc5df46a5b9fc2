"""Which facts are problems, how bad, and when they clear: the alerting rules, free of Dagster.

The wiring (``sensors/alerts.py``) reads runs and check evaluations from Dagster's storage and hands
them here as plain facts.

- A problem's key names what is wrong, never the run that saw it: the same failing check (asset,
  check, window) or the same failing job for the same window is one problem across runs, so an
  hourly failing RPO is said once per ``dedup_hours``, and "resolved" when it passes again.
- The blocking checks of one asset partition are one problem (they are that asset's verdict: a
  corrupt backup fails seven of them and is one page, not seven); each other ERROR check is its own.
- Severity: data at risk (a backup that failed restore verification, the verified RPO over its
  objective, a failed DR drill, a failed release whose rollback did not bring back a good one) is
  critical; other failures are errors; a check we could not perform ("could not verify") is a warning,
  worded as such and never as "backup failed".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ops_project.notify.alert import Alert

CRITICAL_ASSETS = {"restore_verification", "verified_rpo", "dr_drill", "continuous_replication",
                   "point_in_time_restore"}
# Assets whose failed run says it all (a failed release: which gates, and what the rollback did): their checks
# do not alert on their own.
RUN_REPORTED_ASSETS = {"deploy_validation"}
BLOCKING_CHECK_FAILURE = "DagsterAssetCheckFailedError"  # the step failed only because blocking checks failed
REPORTED_BY_CHECKS = "reported_by_checks"  # Failure metadata: the step failed on its checks, which say why


@dataclass(frozen=True)
class CheckFact:
    asset: str
    check: str
    partition: str | None
    passed: bool
    severity: str  # "ERROR" | "WARN"
    blocking: bool
    description: str = ""


@dataclass(frozen=True)
class StepFailure:
    step: str
    error_class: str
    message: str
    metadata: dict = field(default_factory=dict)  # the user's Failure metadata (e.g. outcome, rollback)


@dataclass(frozen=True)
class RunFact:
    run_id: str
    job: str
    status: str  # "SUCCESS" | "FAILURE" | "CANCELED"
    partition: str | None = None
    assets: tuple[str, ...] = ()  # the run's asset selection ("" for the whole job)
    failures: tuple[StepFailure, ...] = ()
    failure_message: str = ""


def _where(partition: str | None) -> str:
    return f" for {partition}" if partition else ""


def check_key(asset: str, check: str, partition: str | None) -> str:
    return f"check:{asset}:{check}:{partition or '-'}"


def verdict_key(asset: str, partition: str | None) -> str:
    return f"verdict:{asset}:{partition or '-'}"


IMPLICIT_JOB = "__ASSET_JOB"


def run_key(run: RunFact) -> str:
    """The same work for the same window: a job by name, or (for runs launched from the asset graph,
    backfills included) the selected assets."""
    what = ",".join(sorted(run.assets)) if run.job == IMPLICIT_JOB or run.job.startswith("__ASSET_JOB") \
        else run.job
    return f"run:{what or run.job}:{run.partition or '-'}"


def check_alerts(facts: list[CheckFact], link: str | None) -> tuple[list[Alert], list[str]]:
    """(problems raised, problem keys cleared) by one run's check evaluations."""
    raised: list[Alert] = []
    cleared: list[str] = []
    verdicts: dict[tuple[str, str | None], list[CheckFact]] = {}
    for fact in facts:
        if fact.severity != "ERROR" or fact.asset in RUN_REPORTED_ASSETS:
            continue
        if fact.blocking:
            verdicts.setdefault((fact.asset, fact.partition), []).append(fact)
            continue
        key = check_key(fact.asset, fact.check, fact.partition)
        if fact.passed:
            cleared.append(key)
        else:
            raised.append(Alert(key=key, severity="critical" if fact.asset in CRITICAL_ASSETS else "error",
                                title=f"check {fact.check} failed on {fact.asset}{_where(fact.partition)}",
                                text=fact.description[:1500], link=link))
    for (asset, partition), group in verdicts.items():
        failed = [f for f in group if not f.passed]
        key = verdict_key(asset, partition)
        if not failed:
            cleared.append(key)
            continue
        names = ", ".join(f.check for f in failed)
        lines = [f"• {f.check}: {f.description[:400]}" for f in failed[:8]]
        what = "the backup failed restore verification" if asset == "restore_verification" else \
            "blocking checks failed"
        title = f"{asset}{_where(partition)}: {what} ({names})"
        raised.append(Alert(key=key, severity="critical" if asset in CRITICAL_ASSETS else "error", title=title,
                            text="\n".join(lines), link=link))
    return raised, cleared


def run_failure_alert(run: RunFact, link: str | None) -> Alert | None:
    """The alert for a failed run, or None when the run failed only because its checks failed (blocking checks,
    or a step that recorded its failed checks and then failed): ``check_alerts`` says that, in their own words."""
    failures = list(run.failures)
    if failures and all(f.error_class == BLOCKING_CHECK_FAILURE or f.metadata.get(REPORTED_BY_CHECKS)
                        for f in failures):
        return None
    key, where = run_key(run), _where(run.partition)
    inconclusive = [f for f in failures if f.metadata.get("outcome") == "inconclusive"]
    lines = [f"• {f.step}: {f.message.strip()[:600]}" for f in failures[:5]]
    text = "\n".join(lines) or (run.failure_message or "the run failed")
    if failures and len(inconclusive) == len(failures):
        return Alert(key=key, severity="warning", link=link, text=text,
                     title=f"could not verify{where} (inconclusive: the check could not run; not the backup's fault)")
    release = next((f.metadata for f in failures if "rollback_summary" in f.metadata), None)
    if release is not None:  # a failed release: say whether the rollback ran and how it ended
        live = bool(release.get("broken_release_live", True))
        ran_ok = release.get("rollback_ran") and release.get("rollback_exit_code") == 0
        outcome = "rolled back" if ran_ok else "the failed release may still be live" if live else "not rolled back"
        return Alert(key=key, severity="critical" if live else "error", link=link,
                     text=f"{release['rollback_summary']}\n{text}",
                     title=f"release {run.partition or '?'} failed deploy validation; {outcome}")
    what = run.job if not run.job.startswith("__ASSET_JOB") else ", ".join(run.assets) or "asset run"
    severity = "critical" if any(a in CRITICAL_ASSETS for a in run.assets) or run.job == "dr_drill_job" else "error"
    status = "was canceled" if run.status == "CANCELED" else "failed"
    return Alert(key=key, severity=severity, link=link, text=text, title=f"{what} {status}{where}")
