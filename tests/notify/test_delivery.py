"""Delivery that never loses, reorders or hides an alert: real HTTP receivers, a real SMTP server, real storage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterEvent, DagsterEventType, DagsterRun, DagsterRunStatus, build_sensor_context

from ops_project.clients import Clients
from ops_project.common.errors import ConfigError
from ops_project.config import load_config
from ops_project.notify.alert import Alert
from ops_project.notify.channels import Email, PagerDuty, Slack
from ops_project.notify.config import DEFAULT_ROUTES
from ops_project.notify.cursor import RunCursor
from ops_project.notify.notifier import Notifier
from resources import NotifierResource
from tests.conftest import local_region


@pytest.fixture
def channels(receiver, smtp_server):
    base, received, state = receiver
    port, mails = smtp_server
    return {
        "slack": Slack(base + "/hooks/T/B/X"), "pagerduty": PagerDuty("pd-key-0123456789", base + "/v2/enqueue"),
        "email": Email("127.0.0.1", port, "ops@b.test", ["oncall@b.test"], security="none"),
        "received": received, "state": state, "mails": mails,
    }


def notifier(tmp_path, ch, **kw) -> Notifier:
    return Notifier([ch["slack"], ch["pagerduty"], ch["email"]], tmp_path / "state",
                    route=lambda s: DEFAULT_ROUTES[s], **kw)


def pd_actions(ch) -> list[str]:
    return [b["event_action"] for p, b in ch["received"] if p == "/v2/enqueue"]


def test_a_channel_that_raises_anything_keeps_the_alert(tmp_path, channels):
    broken = Slack("http://127.0.0.1:1/hooks/\x00bad")  # httpx.InvalidURL: not an HTTP error
    first = Notifier([broken], tmp_path / "state")
    assert first.raise_problem(Alert("k", "backup failed", "x"))
    assert [p.name.split("-")[1] for p in first.outbox.pending()] == ["slack"]
    assert "InvalidURL" in first.problems[0] and "\x00bad" not in first.problems[0]
    fixed = Notifier([channels["slack"]], tmp_path / "state")
    assert fixed.flush() == 1 and "backup failed" in channels["received"][0][1]["text"]


def test_a_secret_with_a_trailing_newline_is_still_the_secret(tmp_path, write_config, demo_db, receiver):
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "a")], alerts={"webhook_url_env": "HOOK"}))
    url = receiver[0] + "/hooks/T/B/X"
    assert Clients(cfg, {"HOOK": url + "\n"}).notifier().channels["slack"].webhook_url == url


def test_worse_is_said_at_once_and_resolved_reaches_every_channel_that_heard_it(tmp_path, channels):
    n = notifier(tmp_path, channels)
    assert n.raise_problem(Alert("p", "could not verify", "region down", severity="warning"))
    assert pd_actions(channels) == [] and len(channels["received"]) == 1  # a warning: Slack only
    assert n.raise_problem(Alert("p", "backup failed verification", "corrupt", severity="critical"))
    assert pd_actions(channels) == ["trigger"] and len(channels["mails"]) == 1  # worse: paged at once
    assert not n.raise_problem(Alert("p", "backup failed verification", "corrupt", severity="error"))
    assert n.clear_problem("p")
    assert pd_actions(channels) == ["trigger", "resolve"]  # the page is resolved, whatever the last severity
    assert channels["mails"][-1]["Subject"].startswith("[ops RESOLVED]")


def test_a_resolve_never_overtakes_its_alert(tmp_path, channels):
    n = notifier(tmp_path, channels)
    channels["state"]["status"] = 503
    n.raise_problem(Alert("p", "RPO over objective", "x", severity="critical"))
    channels["state"]["status"] = 202
    n.clear_problem("p")  # PagerDuty answers again, but the trigger is still waiting: the resolve queues behind it
    assert pd_actions(channels) == ["trigger", "trigger", "resolve"]  # refused (503), then in order
    assert n.outbox.pending() == []


def test_old_news_neither_opens_nor_clears_a_problem(tmp_path, channels):
    n = notifier(tmp_path, channels)
    t = time.time()
    assert n.raise_problem(Alert("run:backup_job:w", "backup_job failed", "x"), at=t - 100)
    assert not n.clear_problem("run:backup_job:w", since=t - 200)  # a success from before the failure
    assert n.clear_problem("run:backup_job:w", since=t - 50)
    assert not n.raise_problem(Alert("run:backup_job:w", "backup_job failed", "x"), at=t - 60)  # late, and older


def test_a_channel_that_stays_silent_is_said_on_the_others(tmp_path, channels):
    n = notifier(tmp_path, channels, stale_after_hours=0.5 / 3600)
    channels["state"]["status"] = 500  # Slack and PagerDuty both refuse; e-mail works
    n.raise_problem(Alert("p", "backup failed", "x", severity="error"))
    time.sleep(0.6)
    n.flush()
    subjects = [m["Subject"] for m in channels["mails"]]
    assert any("alert channel slack has delivered nothing" in s for s in subjects), subjects
    channels["state"]["status"] = 202
    n.flush()
    texts = [b.get("text", "") for p, b in channels["received"] if p.startswith("/hooks/")]
    assert any("backup failed" in t for t in texts)  # the waiting alert went out
    assert any("[ops RESOLVED] alert channel slack" in m["Subject"] for m in channels["mails"])


def test_email_settings_that_can_never_work_are_refused(tmp_path, write_config, demo_db):
    base = {"host": "smtp.b.test", "sender": "ops@b.test", "to": ["o@b.test"]}
    for email, message in (({"security": "ssl"}, "port 465"),
                           ({"security": "none", "port": 25, "password_env": "P"}, "in clear")):
        with pytest.raises(ConfigError, match=message):
            load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                     [local_region(tmp_path, "a")], alerts={"email": {**base, **email}}))


def test_the_check_sensor_never_stalls_behind_runs_it_already_read(tmp_path, write_config, demo_db, receiver,
                                                                   storage_instance):
    """Hundreds of runs that end within seconds (a cancelled backfill) fill every page with runs already read:
    the sensor pages past them and still reads the run that comes after."""
    url = receiver[0] + "/hooks/T/B/X"
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "a"), local_region(tmp_path, "b")],
                                   alerts={"webhook_url_env": "HOOK", "state_dir": str(tmp_path / "st")}))
    from ops_project.definitions import build_definitions

    sensor = build_definitions(cfg).get_repository_def().get_sensor_def("ops_check_failure_sensor")
    resources = {"notifier": NotifierResource(config_path=str(cfg.source), webhook_url=url)}
    instance = storage_instance
    base = datetime.now(UTC) - timedelta(seconds=100)

    def finish(run_id: str, job: str, kind: DagsterEventType, at: datetime) -> None:
        run = instance.add_run(DagsterRun(job_name=job, run_id=run_id, status=DagsterRunStatus.NOT_STARTED))
        instance.handle_run_event(run.run_id, DagsterEvent(kind.value, job_name=job, message="ended"), at)

    for i in range(250):
        finish(f"{i:08d}-0000-4000-8000-000000000000", "restore_verification_job", DagsterEventType.PIPELINE_CANCELED,
               base + timedelta(milliseconds=10 * i))
    cursor = RunCursor(after=base.timestamp() - 1).dump()
    for _ in range(3):
        cursor = sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources)).cursor
    finish("ffffffff-0000-4000-8000-000000000000", "dr_drill_job", DagsterEventType.PIPELINE_FAILURE,
           datetime.now(UTC))
    sensor(build_sensor_context(instance=instance, cursor=cursor, resources=resources))
    texts = [b["text"] for _, b in receiver[1]]
    assert any("restore_verification_job was canceled" in t for t in texts)  # once, for 250 runs
    assert len([t for t in texts if "was canceled" in t]) == 1
    assert any("dr_drill_job failed" in t for t in texts), texts  # the run after them was read
