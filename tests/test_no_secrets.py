"""No secret anywhere: every secret the configuration can name is set, every pipeline runs for real (SQLite and
PostgreSQL backups, an S3 replica, restore tests, the RPO, a DR drill, a failed release that rolls back, the
alerts), and then all of Dagster's storage (SQLite files under DAGSTER_HOME, or every table of the PostgreSQL
storage), its logs and compute logs, every object in every region, the alert state, what the alert receivers
got, and what the processes printed are searched for every secret value."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterEventType, build_sensor_context
from pyrage import x25519

from assets.drills import drill_partitions
from assets.partitions import backup_partition_key, last_window_key
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from resources import build_resources
from tests.conftest import PG_ADMIN, PG_BOOKING_SQL, local_region, s3_region, unique
from tests.releases.test_releases import git
from tests.servers import ACCESS_KEY, SECRET_KEY


def _with_password(url: str, password: str) -> str:
    # trust authentication here: the password is accepted and ignored, but it travels like a real one
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


def _storage_text(instance) -> bytes:
    """Everything the instance stored: its files (SQLite databases, compute logs) and, on PostgreSQL, every row."""
    chunks = []
    root = Path(instance.root_directory)
    for path in root.rglob("*"):
        if path.is_file():
            chunks.append(path.read_bytes())
    storage = type(instance.run_storage).__name__
    if storage.startswith("Postgres"):
        url = instance.run_storage.postgres_url.replace("postgresql+psycopg2://", "postgresql://")
        with psycopg.connect(url) as con:
            tables = [r[0] for r in con.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
            for table in tables:
                for (row,) in con.execute(f'SELECT t::text FROM "{table}" t'):
                    chunks.append(row.encode())
    return b"\n".join(chunks)


def _region_bytes(tmp_path: Path, weed) -> bytes:
    chunks = [p.read_bytes() for p in (tmp_path / "regions").rglob("*") if p.is_file()]
    s3 = weed.client()
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for obj in page.get("Contents", []):
                chunks.append(s3.get_object(Bucket=bucket["Name"], Key=obj["Key"])["Body"].read())
    return b"\n".join(chunks)


@pytest.mark.parametrize("storage_instance", ["sqlite", "postgres"], indirect=True)
def test_no_secret_in_storage_logs_reports_regions_or_alerts(
        tmp_path, demo_db, write_config, s3_env, storage_instance, scratch_pg, receiver, smtp_server, api,
        monkeypatch, capfd):
    instance = storage_instance
    base, received, _state = receiver
    smtp_port, mails = smtp_server
    identity = x25519.Identity.generate()
    core = scratch_pg()
    with psycopg.connect(core, autocommit=True) as con:
        con.execute(PG_BOOKING_SQL.replace("%(rows)s", "2000"))
    secrets = {
        "OPS_S_CORE_URL": _with_password(core, "Pg-Pass-7f3a9c11"),
        "OPS_S_SCRATCH_URL": _with_password(PG_ADMIN, "Scratch-Pass-99e1d2"),
        "OPS_S_RECIPIENTS": str(identity.to_public()),
        "OPS_S_IDENTITY": str(identity),
        "OPS_S_WEBHOOK": base + "/hooks/T000/B000/SlackTok3nZ9q8w7",
        "OPS_S_PD_KEY": "PdRoutingKey0000aaaa1111",
        "OPS_S_SMTP_USER": "smtp-user-4417",
        "OPS_S_SMTP_PASSWORD": "Smtp-Pass-8c2e71",
        "OPS_S_DEPLOY_TOKEN": "DeployTok3n-5521-xyz",
        "OPS_T_KEY": ACCESS_KEY, "OPS_T_SECRET": SECRET_KEY,
        "OPS_S_DOWN_ENDPOINT": "http://127.0.0.1:1/endpoint-path-3e9d",  # a region that does not answer
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    bucket = s3_env[0].make_bucket(unique("secrets"))
    rollback = tmp_path / "rollback.sh"
    rollback.write_text('#!/bin/sh\necho "rolling back to $1"\nenv\necho "token=$OPS_S_DEPLOY_TOKEN"\n'
                        'echo "$OPS_S_CORE_URL $OPS_S_PD_KEY"\n')
    rollback.chmod(0o755)
    repo = tmp_path / "booking.git"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    git(repo, "tag", "v1.0.0")
    url = api("v1.0.0")

    def cfg_with(down=False, **target):
        dr = s3_region("eu-down", "nowhere", "OPS_S_DOWN_ENDPOINT") if down else \
            s3_region("eu-west-1", bucket, "OPS_T_ENDPOINT_A")
        return load_config(write_config(
            [{"name": "booking", "engine": "sqlite", "path": str(demo_db)},
             {"name": "core", "engine": "postgres", "url_env": "OPS_S_CORE_URL"}],
            [local_region(tmp_path, "af-south-1"), dr],
            backup={"encryption": {"age_recipients_env": "OPS_S_RECIPIENTS"}},
            restore={"age_identity_env": "OPS_S_IDENTITY", "postgres_scratch_url_env": "OPS_S_SCRATCH_URL"},
            releases={"repo": str(repo), "rollback_command": [str(rollback)], "rollback_env": ["OPS_S_DEPLOY_TOKEN"],
                      "target": {"base_url": url, "requests_per_endpoint": 3, "rollout_timeout_seconds": 1, **target}},
            alerts={"webhook_url_env": "OPS_S_WEBHOOK", "state_dir": str(tmp_path / "alert-state"),
                    "pagerduty": {"routing_key_env": "OPS_S_PD_KEY", "events_url": base + "/v2/enqueue"},
                    "email": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "sender": "ops@b.test",
                              "to": ["oncall@b.test"], "username_env": "OPS_S_SMTP_USER",
                              "password_env": "OPS_S_SMTP_PASSWORD"}}))

    cfg = cfg_with()
    named = set(secrets) - {"OPS_T_KEY", "OPS_T_SECRET", "OPS_S_DOWN_ENDPOINT"} | {"OPS_T_ENDPOINT_A"}
    assert set(cfg.secret_variables()) >= named
    defs = build_definitions(cfg)
    window = last_window_key(cfg, datetime.now(UTC))
    for db in ("booking", "core"):
        result = defs.resolve_job_def("backup_job").execute_in_process(
            partition_key=backup_partition_key(db, window), instance=instance)
        assert result.success
    assert defs.resolve_job_def("verified_rpo_job").execute_in_process(instance=instance).success
    time.sleep(1.1)  # a second backup id for the drill's corrupt_latest scenario
    later = defs.resolve_job_def("backup_job").execute_in_process(
        partition_key=backup_partition_key("booking", window), instance=instance, raise_on_error=False)
    assert later.success
    week = drill_partitions(cfg).get_partition_keys(current_time=datetime.now(UTC))[-1]
    defs.resolve_job_def("dr_drill_job").execute_in_process(partition_key=week, instance=instance,
                                                            raise_on_error=False)
    # Releases: v1.0.0 passes; v1.1.0 is deployed and fails its health check, so the rollback runs and prints
    # its environment and every secret it can reach.
    instance.add_dynamic_partitions("releases", ["v1.0.0", "v1.1.0"])
    assert defs.resolve_job_def("deploy_validation_job").execute_in_process(
        partition_key="v1.0.0", instance=instance).success
    api_v11 = api("v1.1.0")
    bad = build_definitions(cfg_with(base_url=api_v11, health_paths=["/health", "/no-such-endpoint"]))
    failed = bad.resolve_job_def("deploy_validation_job").execute_in_process(
        partition_key="v1.1.0", instance=instance, raise_on_error=False)
    assert not failed.success
    failure = next(e for e in instance.all_logs(failed.run_id, of_type=DagsterEventType.STEP_FAILURE))
    meta = failure.dagster_event.event_specific_data.user_failure_data.metadata
    assert meta["rollback_ran"].value is True and "rolling back to v1.0.0" in meta["rollback_output"].value
    assert "token=[redacted]" in meta["rollback_output"].value
    # A failure whose library error holds a secret: the DR region's endpoint (a named secret) does not answer.
    down = build_definitions(cfg_with(down=True))
    unreachable = down.resolve_job_def("restore_verification_job").execute_in_process(
        partition_key=backup_partition_key("booking", window), instance=instance, raise_on_error=False)
    assert not unreachable.success
    # Alerts: both sensors over everything that happened.
    resources = {"notifier": build_resources(cfg)["notifier"]}
    check_sensor = defs.get_repository_def().get_sensor_def("ops_check_failure_sensor")
    run_sensor = defs.get_repository_def().get_sensor_def("ops_run_failure_sensor")
    run_cursor = run_sensor.evaluate_tick(build_sensor_context(instance=instance, resources=resources)).cursor
    first = check_sensor(build_sensor_context(instance=instance, resources=resources)).cursor
    doc = json.loads(first)
    doc["after"] -= 3600  # as if the sensor had been watching from before these runs
    check_sensor(build_sensor_context(instance=instance, cursor=json.dumps(doc), resources=resources))
    stale = json.loads(run_cursor)
    stale["record_id"], stale["update_timestamp"] = 0, None
    run_sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=json.dumps(stale), resources=resources))
    sent = json.dumps([body for _, body in received])
    assert "deploy validation" in sent and "v1.1.0" in sent, sent[:2000]  # the alerts did go out
    assert "Rollback to v1.0.0: ran" in sent and "could not verify" in sent, sent

    out, err = capfd.readouterr()
    haystacks = {
        "Dagster storage": _storage_text(instance),
        "regions": _region_bytes(tmp_path, s3_env[0]),
        "alert state": b"\n".join(p.read_bytes() for p in (tmp_path / "alert-state").rglob("*") if p.is_file()),
        "alert receivers": json.dumps([{k: v for k, v in body.items() if k != "routing_key"}
                                       for _, body in received]).encode(),
        "e-mails": b"\n".join(m.as_bytes() for m in mails),
        "process output": (out + err).encode(),
    }
    values = {name: os.environ[name] for name in [*cfg.secret_variables(), "OPS_S_DOWN_ENDPOINT"]}
    values["core password"] = "Pg-Pass-7f3a9c11"
    values["scratch password"] = "Scratch-Pass-99e1d2"
    leaks = [(where, name) for where, hay in haystacks.items() for name, value in values.items()
             if value.encode() in hay]
    assert leaks == []
    assert len(haystacks["Dagster storage"]) > 10_000 and len(haystacks["regions"]) > 10_000  # we looked
