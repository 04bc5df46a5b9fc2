"""Alerts end to end: real HTTP receivers (a Slack webhook, the PagerDuty Events API v2) and a real SMTP server,
driven by the real sensors over real runs, on the SQLite storage of the embedded default (a DAGSTER_HOME, one
event database per run) and the PostgreSQL storage of production."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
)
from dagster._core.storage.tags import WILL_RETRY_TAG
from pyrage import x25519

from assets.partitions import backup_partition_key, last_window_key
from assets.verification import RESTORE_KEY
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from ops_project.notify.alert import Alert
from resources import NotifierResource
from tests.conftest import local_region

PD_KEY = "pd-routing-key-0123456789abcdef"


@dataclass
class Alerting:
    cfg: object
    defs: object
    notifier: NotifierResource
    received: list
    mails: list
    http: dict

    def slack(self) -> list[dict]:
        return [body for path, body in self.received if path.startswith("/hooks/")]

    def pagerduty(self) -> list[dict]:
        return [body for path, body in self.received if path == "/v2/enqueue"]

    def sensor(self, name: str):
        return self.defs.get_repository_def().get_sensor_def(name)


@pytest.fixture
def alerting(tmp_path, demo_db, write_config, receiver, smtp_server, monkeypatch) -> Alerting:
    base, received, state = receiver
    port, mails = smtp_server
    hook = base + "/hooks/T000/B000/XXXX"
    monkeypatch.setenv("OPS_T_WEBHOOK", hook)
    monkeypatch.setenv("OPS_T_PD_KEY", PD_KEY)
    monkeypatch.setenv("OPS_T_AGE_ID", str(x25519.Identity.generate()))  # a real key, never sent anywhere
    cfg = load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
        [local_region(tmp_path, "a"), local_region(tmp_path, "b")],
        alerts={"webhook_url_env": "OPS_T_WEBHOOK", "state_dir": str(tmp_path / "alert-state"),
                "pagerduty": {"routing_key_env": "OPS_T_PD_KEY", "events_url": base + "/v2/enqueue"},
                "email": {"host": "127.0.0.1", "port": port, "security": "none", "sender": "ops@booking.test",
                          "to": ["oncall@booking.test"]}},
        restore={"age_identity_env": "OPS_T_AGE_ID"}))
    notifier = NotifierResource(config_path=str(cfg.source), webhook_url=hook, pagerduty_routing_key=PD_KEY)
    return Alerting(cfg, build_definitions(cfg), notifier, received, mails, state)


def test_a_failing_rpo_alerts_once_across_runs_then_resolves(alerting, storage_instance):
    """Hourly RPO runs that keep failing say it once (not once per run), on every channel its severity routes
    to; when a verified backup brings the RPO back, each channel hears "resolved" once."""
    a, instance = alerting, storage_instance
    sensor = a.sensor("ops_check_failure_sensor")

    def tick(cursor):
        return sensor(build_sensor_context(instance=instance, cursor=cursor, resources={"notifier": a.notifier}))

    cursor = tick(None).cursor  # first look
    for _ in range(3):
        result = a.defs.resolve_job_def("verified_rpo_job").execute_in_process(instance=instance,
                                                                               raise_on_error=False)
        assert not result.success  # an RPO breach fails its run (its checks say why, once)
        cursor = tick(cursor).cursor
    (slack,) = a.slack()
    assert "check rpo failed on verified_rpo" in slack["text"]
    assert "booking: no backup has passed restore verification" in slack["text"] and "/runs/" in slack["text"]
    (page,) = a.pagerduty()
    assert page["event_action"] == "trigger" and page["routing_key"] == PD_KEY
    assert page["payload"]["severity"] == "critical" and "check rpo failed" in page["payload"]["summary"]
    (mail,) = a.mails
    assert mail["Subject"].startswith("[ops CRITICAL] check rpo failed") and \
        mail["X-Envelope-To"] == "oncall@booking.test"

    window = last_window_key(a.cfg, datetime.now(UTC))
    assert a.defs.resolve_job_def("backup_job").execute_in_process(
        partition_key=backup_partition_key("booking", window), instance=instance).success
    assert a.defs.resolve_job_def("verified_rpo_job").execute_in_process(instance=instance).success
    cursor = tick(cursor).cursor
    assert tick(cursor).skip_reason is not None  # nothing more to say
    assert len(a.slack()) == 2 and a.slack()[-1]["text"].startswith(
        ":white_check_mark: *Resolved: check rpo failed on verified_rpo*")
    assert a.pagerduty()[-1] == {"routing_key": PD_KEY, "dedup_key": page["dedup_key"], "event_action": "resolve"}
    assert len(a.mails) == 2 and a.mails[-1]["Subject"].startswith("[ops RESOLVED] check rpo failed")


def test_failed_runs_of_the_asset_graph_alert_once_per_problem(alerting, storage_instance, tmp_path):
    """A restore test launched from the asset graph (the implicit asset job: UI materialisations, backfills)
    that fails before any check (its region is gone) alerts, through Dagster's own run-status cursor, as "could
    not verify"; the same failure in the next run is the same problem and is not said again."""
    a, instance = alerting, storage_instance
    (tmp_path / "regions" / "b").rename(tmp_path / "regions" / "b-unmounted")  # the DR share did not mount
    sensor = a.sensor("ops_run_failure_sensor")
    old = last_window_key(a.cfg, datetime.now(UTC) - timedelta(days=2))
    partition = backup_partition_key("booking", old)
    implicit = a.defs.resolve_implicit_global_asset_job_def()

    def tick(cursor):
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources={"notifier": a.notifier})
        return sensor.evaluate_tick(ctx).cursor

    cursor = tick(None)  # Dagster's own first look
    runs = []
    for _ in range(2):
        result = implicit.execute_in_process(asset_selection=[RESTORE_KEY], partition_key=partition,
                                             instance=instance, raise_on_error=False)
        assert not result.success
        runs.append(result.run_id)
        cursor = tick(cursor)
    (slack,) = a.slack()
    assert f"could not verify for {partition} (inconclusive" in slack["text"]
    assert "does not exist" in slack["text"] and f"/runs/{runs[0]}" in slack["text"]
    assert a.pagerduty() == []  # a warning: we could not check, the backup is not known to be bad


def test_run_failure_alert_with_link_and_reason_not_for_retries(alerting, demo_db):
    a = alerting
    old = last_window_key(a.cfg, datetime.now(UTC))
    demo_db.rename(demo_db.with_suffix(".moved"))  # the volume holding the live database was not mounted
    sensor = a.sensor("ops_run_failure_sensor")
    with DagsterInstance.ephemeral() as instance:
        for tags in ({WILL_RETRY_TAG: "true"}, {}):
            result = a.defs.resolve_job_def("backup_job").execute_in_process(
                partition_key=backup_partition_key("booking", old), instance=instance, raise_on_error=False,
                tags=tags)
            assert not result.success
            run = instance.get_run_by_id(result.run_id)
            failure = instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)[0].dagster_event
            ctx = build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure,
                                                  dagster_instance=instance, dagster_run=run,
                                                  resources={"notifier": a.notifier}).for_run_failure()
            assert sensor(ctx) is None  # never a SkipReason: that would end the tick before later failures
            if tags:
                assert a.slack() == []  # the run that will be retried did not alert
    (slack,) = a.slack()
    text = slack["text"]
    assert f"backup_job failed for booking|{old}" in text
    assert f"SQLite database {demo_db} does not exist" in text
    assert f"/runs/{result.run_id}" in text and "AGE-SECRET-KEY" not in json.dumps(a.received)
    assert a.pagerduty() == []  # an error, not a page: routed to Slack and e-mail only
    assert len(a.mails) == 1


def test_channels_escape_route_and_never_inject(alerting):
    a = alerting
    notifier = a.notifier.get()
    tag = "v1.0.0<!channel>&<@U024BE7LH>"
    assert notifier.raise_problem(Alert(key="w1", title=f"could not verify release {tag}",
                                        text="scratch disk full\r\nBcc: attacker@evil.test", severity="warning"))
    (slack,) = a.slack()
    assert "<!channel>" not in json.dumps(slack) and "<@U024BE7LH>" not in json.dumps(slack)
    assert "v1.0.0&lt;!channel&gt;&amp;&lt;@U024BE7LH&gt;" in slack["text"]
    assert a.pagerduty() == [] and a.mails == []  # a warning goes to Slack only
    assert notifier.raise_problem(Alert(key="e1", title=f"release {tag}\r\nBcc: attacker@evil.test", text="x",
                                        severity="error"))
    (mail,) = a.mails
    assert mail["Bcc"] is None and mail["X-Envelope-To"] == "oncall@booking.test"
    assert "\n" not in re.sub(r"\r?\n[ \t]", " ", mail["Subject"]) and a.pagerduty() == []  # folded, not split
    assert notifier.raise_problem(Alert(key="e1", title="again", text="x")) is False  # the same problem


def test_outbox_survives_an_outage_and_quarantines_a_corrupt_entry(alerting, tmp_path):
    a = alerting
    notifier = a.notifier.get()
    a.http["status"] = 503
    assert notifier.raise_problem(Alert(key="c1", title="backup failed", text="boom", severity="critical"))
    assert len(a.mails) == 1  # e-mail was up: it got its copy at once
    pending = notifier.outbox.pending()
    assert sorted(p.name.split("-")[1] for p in pending) == ["pagerduty", "slack"]
    corrupt = notifier.outbox.dir / "00000000000000000000-slack-torn.json"
    corrupt.write_text('{"channel": "slack", "alert": {"key"')  # a torn write
    assert notifier.flush() == 0  # still down: nothing lost
    a.http["status"] = 202
    assert notifier.flush() == 2  # the torn entry did not block the two behind it
    assert [p.name for p in notifier.outbox.quarantined()] == [corrupt.name]
    assert "unreadable outbox entry" in (notifier.outbox.quarantine_dir / (corrupt.name + ".reason")).read_text()
    assert notifier.outbox.pending() == [] and notifier.flush() == 0
    assert [b for b in a.slack() if "backup failed" in b["text"]] and a.pagerduty()[0]["event_action"] == "trigger"


def test_secrets_never_reach_a_channel_or_the_outbox(alerting):
    a = alerting
    notifier = a.notifier.get()
    a.http["status"] = 500
    identity = str(a.notifier.get().secrets and [s for s in a.notifier.get().secrets if s.startswith("AGE-")][0])
    notifier.raise_problem(Alert(key="s1", title=f"leak {PD_KEY}", text=f"{identity} in text", severity="critical"))
    stored = "".join(p.read_text() for p in notifier.outbox.pending())
    a.http["status"] = 202
    notifier.flush()
    seen = json.dumps([b for _, b in a.received if "payload" in b or "text" in b]) + stored + \
        "".join(m.as_string() for m in a.mails)
    assert PD_KEY not in seen.replace(f'"routing_key": "{PD_KEY}"', "")
    assert "AGE-SECRET-KEY" not in seen and "[redacted]" in seen
