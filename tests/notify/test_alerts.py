"""Alerts reach a real HTTP server on 127.0.0.1: content, run link, dedup, and no secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    SkipReason,
    build_run_status_sensor_context,
    build_sensor_context,
)
from dagster._core.storage.tags import WILL_RETRY_TAG

from assets.partitions import backup_partition_key, last_window_key
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from ops_project.notify.notifier import Alert, Notifier, NotifyError
from resources import NotifierResource
from tests.conftest import local_region


def test_notifier_posts_dedups_and_scrubs(tmp_path, webhook):
    url, received, state = webhook
    notifier = Notifier(url, tmp_path / "alerts", secrets=["s3cr3t-value-42"])
    alert = Alert("k1", "backup_job failed", "boom with s3cr3t-value-42 inside", "http://ui/runs/abc")
    assert notifier.send(alert) is True
    assert notifier.send(alert) is False  # the same alert again: deduplicated
    assert len(received) == 1
    body = received[0]
    assert "*backup_job failed*" in body["text"] and "<http://ui/runs/abc|" in body["text"]
    assert "s3cr3t-value-42" not in json.dumps(body) and "[redacted]" in body["text"]
    state["status"] = 500
    with pytest.raises(NotifyError, match="answered 500"):
        notifier.send(Alert("k2", "other", "x"))
    assert not notifier.already_sent("k2")  # an undelivered alert waits in the outbox...
    assert notifier.flush() == 0  # ...while the webhook is still failing
    state["status"] = 200
    assert notifier.flush() == 1 and notifier.already_sent("k2")  # ...and goes out once it answers
    assert received[-1]["attachments"][0]["title"] == "other" and notifier.flush() == 0


@pytest.fixture
def alert_defs(tmp_path, demo_db, write_config, webhook, monkeypatch):
    url, received, _state = webhook
    monkeypatch.setenv("OPS_T_WEBHOOK", url)
    monkeypatch.setenv("OPS_T_AGE_ID", "AGE-SECRET-KEY-1NOTUSEDBUTSECRET")
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "a"), local_region(tmp_path, "b")],
                                   alerts={"webhook_url_env": "OPS_T_WEBHOOK", "state_dir": str(tmp_path / "st")},
                                   restore={"age_identity_env": "OPS_T_AGE_ID"}))
    notifier = NotifierResource(config_path=str(cfg.source), webhook_url=url)
    return cfg, build_definitions(cfg), notifier, received


def test_run_failure_alert_with_link_and_reason(alert_defs):
    cfg, defs, notifier, received = alert_defs
    old = last_window_key(cfg, datetime.now(UTC) - timedelta(hours=12))
    sensor = defs.get_repository_def().get_sensor_def("ops_run_failure_sensor")
    with DagsterInstance.ephemeral() as instance:
        for tags in ({}, {WILL_RETRY_TAG: "true"}):
            result = defs.resolve_job_def("backup_job").execute_in_process(
                partition_key=backup_partition_key("booking", old), instance=instance, raise_on_error=False,
                tags=tags)
            assert not result.success
            run = instance.get_run_by_id(result.run_id)
            failure = instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)[0].dagster_event
            ctx = build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure,
                                                  dagster_instance=instance, dagster_run=run,
                                                  resources={"notifier": notifier}).for_run_failure()
            out = sensor(ctx)
            if tags:
                assert isinstance(out, SkipReason) and "will be retried" in out.skip_message
    assert len(received) == 1  # the run that will be retried did not alert
    text = received[0]["text"]
    assert f"backup_job failed for booking|{old}" in text
    assert f"backup window {old}" in text and "nothing was stored" in text
    assert f"http://127.0.0.1:3000/runs/{result.run_id}" not in text  # the second (retried) run is not the one
    assert "/runs/" in text and "AGE-SECRET-KEY" not in json.dumps(received)


def test_failed_error_check_alerts_once(alert_defs):
    cfg, defs, notifier, received = alert_defs
    sensor = defs.get_repository_def().get_sensor_def("ops_check_failure_sensor")
    with DagsterInstance.ephemeral() as instance:
        first = sensor(build_sensor_context(instance=instance, resources={"notifier": notifier}))
        assert first.cursor is not None and received == []
        result = defs.resolve_job_def("verified_rpo_job").execute_in_process(instance=instance)
        assert result.success  # the check fails, the run does not: a run-failure sensor would stay silent
        second = sensor(build_sensor_context(instance=instance, cursor=first.cursor, resources={"notifier": notifier}))
        third = sensor(build_sensor_context(instance=instance, cursor=first.cursor, resources={"notifier": notifier}))
    assert len(received) == 1  # the repeated tick was deduplicated
    assert "check rpo_booking failed on verified_rpo" in received[0]["text"]
    assert "no backup has passed restore verification" in received[0]["text"]
    assert int(second.cursor) > int(first.cursor) and third.cursor == second.cursor
