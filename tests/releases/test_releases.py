"""Release tags → sensor → deploy validation, against real git repositories and the real demo API."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from dagster import (
    AssetCheckKey,
    DagsterEventType,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_run_status_sensor_context,
    build_sensor_context,
)
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from assets.releases import DEPLOY_KEY, GATES, releases_partitions
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from ops_project.releases.tags import load_cursor
from ops_project.releases.validate import validate
from resources import NotifierResource
from tests.conftest import local_region


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}).stdout.strip()


def config(write_config, tmp_path, demo_db, repo, base_url="http://127.0.0.1:9", **releases):
    return load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)}], [local_region(tmp_path, "r1")],
        releases={"repo": str(repo), "target": {"base_url": base_url, "requests_per_endpoint": 5,
                                                 "rollout_timeout_seconds": 1}, **releases}))


@dataclass
class Tick:
    run_requests: list
    cursor: str | None
    skip_message: str | None


def tick(defs, instance, cursor=None) -> Tick:
    """One evaluation through Dagster's test API; partitions it asks for are added as the daemon would."""
    sensor = defs.get_repository_def().get_sensor_def("release_tag_sensor")
    out = sensor(build_sensor_context(instance=instance, cursor=cursor))
    if isinstance(out, SkipReason):
        return Tick([], None, out.skip_message)
    assert isinstance(out, SensorResult)
    for request in out.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return Tick(list(out.run_requests or []), out.cursor, out.skip_reason.skip_message if out.skip_reason else None)


def test_sensor_new_moved_deleted_nonmatching_tags(tmp_path, demo_db, repo, write_config):
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo))
    with DagsterInstance.ephemeral() as instance:
        first = tick(defs, instance)
        assert first.run_requests == [] and "recorded 1 existing tag" in first.skip_message
        assert load_cursor(first.cursor).tags == {"v1.0.0": git(repo, "rev-parse", "v1.0.0")}
        gen = load_cursor(first.cursor).generation  # started at the time of the first look

        git(repo, "commit", "-q", "--allow-empty", "-m", "second")
        git(repo, "tag", "v1.1.0")
        git(repo, "tag", "v1.2.0")  # two tags in one tick
        git(repo, "tag", "nightly-2026-11-22")  # does not match the pattern
        sha = git(repo, "rev-parse", "HEAD")
        second = tick(defs, instance, first.cursor)
        assert [r.run_key for r in second.run_requests] == [f"v1.1.0@{sha}#{gen + 1}", f"v1.2.0@{sha}#{gen + 1}"]
        assert [r.partition_key for r in second.run_requests] == ["v1.1.0", "v1.2.0"]
        assert set(instance.get_dynamic_partitions("releases")) == {"v1.1.0", "v1.2.0"}
        assert "nightly-2026-11-22" not in load_cursor(second.cursor).tags

        quiet = tick(defs, instance, second.cursor)
        assert quiet.run_requests == [] and "no new or moved tags" in quiet.skip_message

        git(repo, "commit", "-q", "--allow-empty", "-m", "fix")
        git(repo, "tag", "-f", "v1.2.0")  # moved to a new commit
        git(repo, "tag", "-d", "v1.1.0")  # deleted
        moved = tick(defs, instance, quiet.cursor)
        new_sha = git(repo, "rev-parse", "HEAD")
        assert [r.run_key for r in moved.run_requests] == [f"v1.2.0@{new_sha}#{gen + 2}"]
        assert "v1.1.0" not in load_cursor(moved.cursor).tags

        git(repo, "tag", "-a", "v2.0.0", "-m", "annotated")  # annotated tags resolve to their commit
        annotated = tick(defs, instance, moved.cursor)
        assert [r.run_key for r in annotated.run_requests] == [f"v2.0.0@{new_sha}#{gen + 3}"]


def test_sensor_unreachable_repository_keeps_the_cursor(tmp_path, demo_db, repo, write_config):
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo))
    with DagsterInstance.ephemeral() as instance:
        first = tick(defs, instance)
        shutil.move(repo, tmp_path / "elsewhere")
        result = tick(defs, instance, first.cursor)
        assert result.run_requests == []
        assert str(repo) in result.skip_message and "cursor unchanged" in result.skip_message
        assert result.cursor is None  # the tick leaves the stored cursor as it was


def test_sensor_ten_thousand_tags_tick_fast(tmp_path, demo_db, repo, write_config):
    sha = git(repo, "rev-parse", "HEAD")
    refs = "".join(f"create refs/tags/v3.{i // 100}.{i % 100} {sha}\n" for i in range(10_000))
    subprocess.run(["git", "-C", str(repo), "update-ref", "--stdin"], input=refs, text=True, check=True)
    git(repo, "pack-refs", "--all")
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo))
    with DagsterInstance.ephemeral() as instance:
        first = tick(defs, instance)
        git(repo, "tag", "v9.0.0")
        t = time.perf_counter()
        result = tick(defs, instance, first.cursor)
        elapsed = time.perf_counter() - t
    assert [r.partition_key for r in result.run_requests] == ["v9.0.0"]
    assert len(result.cursor) < 64_000  # bounded: 4-byte digests for the tags beyond the newest 50
    assert elapsed < 2.0, elapsed


def test_first_tick_can_run_existing_tags(tmp_path, demo_db, repo, write_config):
    defs = build_definitions(config(write_config, tmp_path, demo_db, repo, run_existing_on_first_tick=True))
    with DagsterInstance.ephemeral() as instance:
        assert [r.partition_key for r in tick(defs, instance).run_requests] == ["v1.0.0"]


def target(url: str, **kw):
    from ops_project.releases.config import ReleaseTarget

    return ReleaseTarget(**{"base_url": url, "requests_per_endpoint": 10, "rollout_timeout_seconds": 1, **kw})


def _count(db: Path, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def appointments(db: Path) -> int:
    return _count(db, "appointments")


def test_healthy_release_passes_and_leaves_nothing_behind(api, demo_db):
    before = appointments(demo_db)
    url = api("v1.4.2")
    validate("v1.4.2", target(url))  # a first run may create the one synthetic-monitor customer
    customers = _count(demo_db, "customers")
    verdict = validate("v1.4.2", target(url))
    assert verdict.passed, verdict.markdown()
    assert _count(demo_db, "customers") == customers  # no new customer per run
    assert {c.name for c in verdict.checks} == {"version", "health", "smoke_flow", "latency_budget", "regression"}
    assert all(ms < 200 for ms in verdict.p95_ms.values()) and verdict.error_rate == 0
    assert appointments(demo_db) == before


def test_failures_each_name_their_reason(api, demo_db, tmp_path):
    wrong = validate("v1.4.2", target(api("v1.4.1")))
    assert not wrong.passed and "serves 'v1.4.1', expected 'v1.4.2'" in _failed(wrong, "version")

    slow = validate("v1.4.2", target(api("v1.4.2", latency_ms=120), latency_budget_ms=100))
    assert "p95" in _failed(slow, "latency_budget") and "budget 100 ms" in _failed(slow, "latency_budget")

    broken_db = tmp_path / "broken.db"
    shutil.copy(demo_db, broken_db)
    con = sqlite3.connect(broken_db)
    con.execute("DROP TABLE audit_log")  # a bad migration: booking now fails, reads still work
    con.commit()
    con.close()
    broken = validate("v1.4.2", target(api("v1.4.2", broken_db)))
    assert "book" in _failed(broken, "smoke_flow") and "503" in _failed(broken, "smoke_flow")
    assert _passed(broken, "health")

    gone_db = tmp_path / "gone.db"
    shutil.copy(demo_db, gone_db)
    url = api("v1.4.2", gone_db)
    gone_db.unlink()
    unhealthy = validate("v1.4.2", target(url))
    assert "/health" in _failed(unhealthy, "health") and "503" in _failed(unhealthy, "health")
    # Retries cannot hide failures: every failed attempt counts in the error rate.
    assert unhealthy.error_rate > 0.5


def test_other_tenant_and_no_rollback_of_an_undeployed_tag(api, tmp_path):
    log = tmp_path / "rollback.log"
    script = tmp_path / "rollback.sh"
    script.write_text(f"#!/bin/sh\necho \"$1\" > {log}\n")
    script.chmod(0o755)
    url = api("v1.2.0")
    other = validate("v1.2.0", target(url, smoke_tenant="tenant-0003"))
    assert other.passed, other.markdown()  # its own service ids, not tenant-0001's
    # v1.1.0 and v1.2.0 pushed together: the service serves v1.2.0, so v1.1.0 fails its version check,
    # and must not roll back the release that is actually deployed.
    stale = validate("v1.1.0", target(url), previous=("v1.0.0", {}), rollback_command=[str(script)])
    assert not stale.passed and stale.rollback["skipped"] and not log.exists()
    assert not stale.broken_release_live and "serves 'v1.2.0', not v1.1.0" in stale.rollback_summary()


def test_the_same_service_twice_is_never_a_regression(api):
    """The same unchanged service validated as two releases, three times over: never a regression (p95 of a few
    samples is nearly the maximum; the comparison uses every sample, a significance test and a floor)."""
    url = api("v1.0.0")
    for _ in range(3):
        base = validate("v1.0.0", target(url, requests_per_endpoint=50))
        again = validate("v1.0.0", target(url, requests_per_endpoint=50), previous=("v0.9.0", base.p95_ms),
                         previous_samples=base.samples_ms)
        assert _passed(again, "regression"), again.markdown()


def test_a_real_slowdown_is_caught_by_the_statistics(api):
    fast = validate("v1.0.0", target(api("v1.0.0"), requests_per_endpoint=30))
    slow = validate("v1.0.0", target(api("v1.0.0", latency_ms=40), requests_per_endpoint=30),
                    previous=("v0.9.0", fast.p95_ms), previous_samples=fast.samples_ms)
    message = _failed(slow, "regression")
    assert "Mann-Whitney p=" in message and "slower than v0.9.0" in message


def test_regression_against_last_good_and_rollback(api, tmp_path):
    log = tmp_path / "rollback.log"
    script = tmp_path / "rollback.sh"
    script.write_text(f"#!/bin/sh\necho \"rolling back to $1\"\necho \"$1\" > {log}\n")
    script.chmod(0o755)
    url = api("v1.5.0", latency_ms=60)
    verdict = validate("v1.5.0", target(url), previous=("v1.4.2", {"/health": 2.0, "/version": 2.0}),
                       rollback_command=[str(script)])
    assert "slower than v1.4.2" in _failed(verdict, "regression") and "factor and floor only" in \
        _failed(verdict, "regression")  # a baseline recorded before samples were kept
    assert verdict.rollback["to"] == "v1.4.2" and verdict.rollback["exit_code"] == 0
    assert "rolling back to v1.4.2" in verdict.rollback["output"] and log.read_text().strip() == "v1.4.2"


def test_tag_pushed_sensor_run_verdict_end_to_end(api, tmp_path, demo_db, repo, write_config, webhook, monkeypatch):
    url = api("v1.1.0")
    hook_url, received, _ = webhook
    monkeypatch.setenv("OPS_T_WEBHOOK", hook_url)
    cfg = load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)}], [local_region(tmp_path, "r1")],
        releases={"repo": str(repo), "target": {"base_url": url, "requests_per_endpoint": 5,
                                                 "rollout_timeout_seconds": 1}},
        alerts={"webhook_url_env": "OPS_T_WEBHOOK", "state_dir": str(tmp_path / "alerts")}))
    defs = build_definitions(cfg)
    with DagsterInstance.ephemeral() as instance:
        first = tick(defs, instance)
        git(repo, "commit", "-q", "--allow-empty", "-m", "release")
        git(repo, "tag", "v1.1.0")
        (request,) = tick(defs, instance, first.cursor).run_requests
        result = defs.resolve_job_def("deploy_validation_job").execute_in_process(
            partition_key=request.partition_key, instance=instance, tags=request.tags)
        assert result.success
        (mat,) = result.asset_materializations_for_node("deploy_validation")
        assert mat.partition == "v1.1.0" and mat.metadata["verdict"].value == "passed"
        assert "PASSED" in mat.metadata["summary"].value
        # A release that does not serve its tag fails the run, with the reason in the failure's metadata.
        git(repo, "tag", "v1.2.0")
        (bad,) = tick(defs, instance, first.cursor).run_requests[-1:]
        failed = defs.resolve_job_def("deploy_validation_job").execute_in_process(
            partition_key=bad.partition_key, instance=instance, raise_on_error=False)
        assert not failed.success
        failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
        assert "serves 'v1.1.0', expected 'v1.2.0'" in str(failure.event_specific_data.error)
        # The UI: the failed release's partition is failed, with its own numbers and a result per gate.
        status = instance.get_status_by_partition(DEPLOY_KEY, ["v1.1.0", "v1.2.0"], releases_partitions)
        assert status == {"v1.1.0": AssetPartitionStatus.MATERIALIZED, "v1.2.0": AssetPartitionStatus.FAILED}
        (obs,) = instance.fetch_observations(DEPLOY_KEY, limit=5).records
        assert obs.partition_key == "v1.2.0" and obs.asset_observation.metadata["verdict"].value == "failed"
        assert isinstance(obs.asset_observation.metadata["error_rate"].value, float)
        gates = {rec.key.name: rec.status.value for name in GATES for rec in
                 instance.event_log_storage.get_asset_check_execution_history(
                     AssetCheckKey(DEPLOY_KEY, name), limit=5) if rec.partition == "v1.2.0"}
        assert gates["version"] == "FAILED" and set(gates) == set(GATES)
        # ... and the run-failure sensor tells people, with the reason and the run link.
        sensor = defs.get_repository_def().get_sensor_def("ops_run_failure_sensor")
        run_failure = instance.all_logs(failed.run_id, of_type=DagsterEventType.RUN_FAILURE)[0].dagster_event
        sensor(build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=run_failure, dagster_instance=instance,
            dagster_run=instance.get_run_by_id(failed.run_id),
            resources={"notifier": NotifierResource(config_path=str(cfg.source), webhook_url=hook_url)},
        ).for_run_failure())
    (alert,) = received
    assert "release v1.2.0 failed deploy validation; not rolled back" in alert["text"]
    assert "Rollback to v1.1.0: not run (the service serves 'v1.1.0', not v1.2.0" in alert["text"]
    assert "serves 'v1.1.0', expected 'v1.2.0'" in alert["text"] and f"/runs/{failed.run_id}" in alert["text"]


def _failed(verdict, name: str) -> str:
    check = next(c for c in verdict.checks if c.name == name)
    assert not check.passed, verdict.markdown()
    return check.message


def _passed(verdict, name: str) -> bool:
    return next(c for c in verdict.checks if c.name == name).passed



def test_demo_api_errors_are_proper_status_codes(api):
    url = api("v1.0.0")
    with httpx.Client(base_url=url, timeout=5) as http:
        assert http.get("/tenants/no-such-tenant/services").status_code == 404
        assert http.get("/tenants/tenant-0001/availability", params={"date": "tomorrow"}).status_code == 422
        assert http.post("/tenants/tenant-0001/bookings", content=b"{not json").status_code == 400
        assert http.post("/tenants/tenant-0001/bookings", json={"service_id": 1}).status_code == 422
        services = http.get("/tenants/tenant-0001/services").json()
        body = {"service_id": services["services"][0]["id"], "staff_id": services["staff"][0]["id"],
                "customer_email": "api-test@ops.invalid", "starts_at": "2031-03-03T09:00:00Z"}
        created = http.post("/tenants/tenant-0001/bookings", json=body)
        assert created.status_code == 201
        clash = http.post("/tenants/tenant-0001/bookings", json=body)
        assert clash.status_code == 409 and "already booked" in clash.json()["error"]
        booking = created.json()["id"]
        assert http.get(f"/tenants/tenant-0001/bookings/{booking}").json()["status"] == "booked"
        assert http.delete(f"/tenants/tenant-0001/bookings/{booking}").status_code == 200
        assert http.get(f"/tenants/tenant-0001/bookings/{booking}").status_code == 404
        assert http.get("/tenants/tenant-0001/bookings/999999999").status_code == 404
