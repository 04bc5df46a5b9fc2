"""The alerting rules as plain functions: what is one problem, how bad, what clears it, what it says."""

from __future__ import annotations

from ops_project.notify.config import AlertsConfig
from ops_project.notify.ledger import Ledger
from ops_project.notify.rules import CheckFact, RunFact, StepFailure, check_alerts, run_failure_alert, run_key


def fact(check, passed, *, asset="restore_verification", partition="booking|2026-11-22-04:00", blocking=True,
         severity="ERROR"):
    return CheckFact(asset, check, partition, passed, severity, blocking, f"{check} said so")


def test_a_corrupt_backup_is_one_critical_problem_not_seven():
    facts = [fact(name, False) for name in ("stored_sha256", "row_counts", "content_checksums")]
    facts += [fact("rto_within_objective", False, blocking=False, severity="WARN")]  # warnings never alert
    raised, cleared = check_alerts(facts, "http://ui/runs/r1")
    (alert,) = raised
    assert alert.severity == "critical" and alert.key == "verdict:restore_verification:booking|2026-11-22-04:00"
    assert "failed restore verification (stored_sha256, row_counts, content_checksums)" in alert.title
    assert "r1" not in alert.key and cleared == []
    raised, cleared = check_alerts([fact(name, True) for name in ("stored_sha256", "row_counts")], None)
    assert raised == [] and cleared == [alert.key]  # the next verification of that window passed


def test_independent_checks_are_problems_of_their_own():
    facts = [fact("rpo_booking", False, asset="verified_rpo", partition=None, blocking=False),
             fact("rpo_core", True, asset="verified_rpo", partition=None, blocking=False)]
    raised, cleared = check_alerts(facts, None)
    assert [a.key for a in raised] == ["check:verified_rpo:rpo_booking:-"]
    assert cleared == ["check:verified_rpo:rpo_core:-"]


def test_run_problems_name_the_work_not_the_run():
    one = RunFact("run-1", "__ASSET_JOB", "FAILURE", "booking|w", ("restore_verification",))
    two = RunFact("run-2", "__ASSET_JOB", "FAILURE", "booking|w", ("restore_verification",))
    assert run_key(one) == run_key(two) == "run:restore_verification:booking|w"
    assert run_key(RunFact("r", "backup_job", "FAILURE", "booking|w")) == "run:backup_job:booking|w"


def test_blocking_check_failures_are_left_to_the_check_sensor():
    run = RunFact("r", "backup_job", "FAILURE", "p",
                  failures=(StepFailure("restore_verification", "DagsterAssetCheckFailedError", "7 blocking"),))
    assert run_failure_alert(run, None) is None


def test_inconclusive_reads_could_not_verify_and_is_a_warning():
    run = RunFact("r", "restore_verification_job", "FAILURE", "booking|w", failures=(StepFailure(
        "restore_verification", "Failure", "could not verify booking backup X: region unreachable",
        {"outcome": "inconclusive"}),))
    alert = run_failure_alert(run, None)
    assert alert.severity == "warning" and alert.title.startswith("could not verify for booking|w")
    assert "failed" not in alert.title


def test_a_failed_release_says_what_the_rollback_did():
    def release(**meta):
        return run_failure_alert(RunFact("r", "deploy_validation_job", "FAILURE", "v1.3.0", failures=(
            StepFailure("deploy_validation", "Failure", "latency_budget: p95 900 ms", meta),)), None)

    ok = release(rollback_summary="Rollback to v1.2.0: ran and succeeded (exit 0).", rollback_ran=True,
                 rollback_exit_code=0, broken_release_live=False)
    assert ok.severity == "error" and ok.title == "release v1.3.0 failed deploy validation; rolled back"
    assert ok.text.startswith("Rollback to v1.2.0: ran and succeeded")
    broken = release(rollback_summary="Rollback to v1.2.0: ran and FAILED (exit 3).", rollback_ran=True,
                     rollback_exit_code=3, broken_release_live=True)
    assert broken.severity == "critical" and "may still be live" in broken.title and "FAILED (exit 3)" in broken.text
    none = release(rollback_summary="Rollback to v1.2.0: not run (no releases.rollback_command is configured).",
                   rollback_ran=False, broken_release_live=True)
    assert none.severity == "critical" and "not run (no releases.rollback_command" in none.text


def test_one_alert_per_problem_per_dedup_window_then_resolved_once(tmp_path):
    ledger = Ledger(tmp_path, dedup_hours=1)
    assert ledger.raised("k", "t", "error", now=1000) is True
    assert ledger.raised("k", "t", "error", now=1000 + 600) is False  # ten minutes later: the same problem
    assert ledger.raised("k", "t", "error", now=1000 + 3700) is True  # a reminder, once per hour
    assert ledger.cleared("k").seen == 3 and ledger.cleared("k") is None  # "resolved" is said once
    assert ledger.raised("k", "t", "error", now=9000) is True  # it came back: a new problem
    ledger._file("k").write_text('{"key": "k", "last_sent_at": null}')  # a state file of the wrong shape
    assert ledger.raised("k", "t", "error", now=9001) is True  # an unreadable state alerts rather than not


def test_routes_fall_back_to_every_configured_channel():
    only_pd = AlertsConfig(pagerduty={"routing_key_env": "K"})
    assert only_pd.channels_for("warning") == ["pagerduty"]  # no alert goes nowhere
    both = AlertsConfig(webhook_url_env="H", pagerduty={"routing_key_env": "K"})
    assert both.channels_for("critical") == ["pagerduty", "slack"] and both.channels_for("error") == ["slack"]


def test_each_batch_of_a_job_is_a_problem_of_its_own():
    """A scheduled batch has no single partition: its databases name it, so one batch's failure is never merged
    with another's, nor said resolved when another batch of the same job succeeds; the same batch succeeding
    again (at the next window) resolves it."""
    from dagster._core.storage.dagster_run import DagsterRun

    from sensors.alerts import run_partition

    def batch(first: str, last: str, window: str = "2026-11-22-04:00") -> DagsterRun:
        return DagsterRun(job_name="backup_job", tags={"dagster/asset_partition_range_start": f"{first}|{window}",
                                                       "dagster/asset_partition_range_end": f"{last}|{window}"})

    def key(run: DagsterRun) -> str:
        return run_key(RunFact("r", run.job_name, "FAILURE", run_partition(run), ("database_backup",)))

    failed, other = batch("t0000", "t0049"), batch("t0050", "t0099")
    assert key(failed) != key(other)
    assert key(failed) == key(batch("t0000", "t0049", "2026-11-22-08:00")) == "run:backup_job:t0000..t0049"
    assert key(batch("t0007", "t0007")) == "run:backup_job:t0007|2026-11-22-04:00"  # a range of one: that partition
    assert run_partition(DagsterRun(job_name="backup_job", tags={"dagster/partition": "a|w"})) == "a|w"
    assert run_partition(DagsterRun(job_name="verified_rpo_job")) is None
