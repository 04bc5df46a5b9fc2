"""PostgreSQL continuous protection for real: a cluster of the tests' own with ``archive_mode = on`` and
pgBackRest's ``archive_command`` from ops.yaml, two local regions (two repositories), a base backup, writes, and
restores to a moment that hold exactly the rows committed by then; the current RPO read from the archive, failing
while archiving is broken and recovering when it is mended; the point-in-time restore test through Dagster."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml

from ops_project.cli import main
from ops_project.config import load_config
from ops_project.continuous.pgbackrest import config_text, server_settings
from ops_project.continuous.replicas import survey
from tests.continuous.conftest import check_evaluation
from tests.servers import PG_BIN, archiving_postgres, free_ports, make_archiving_cluster

ARCHIVE_TIMEOUT = 2
URL_ENV = "OPS_T_CORE_URL"


@pytest.fixture
def root():
    """A directory the cluster's owner (postgres) can reach: the data directory, both regions and scratch."""
    path = Path(tempfile.mkdtemp(prefix="ops-pgx-"))
    path.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _local(root: Path, name: str) -> dict:
    (root / "regions" / name).mkdir(parents=True)
    return {"name": name, "kind": "local", "path": str(root / "regions" / name)}


@contextlib.contextmanager
def _archiving(root: Path, monkeypatch, regions: list[dict], server_env: dict | None = None):
    """(config path, server): a cluster archiving into ``regions`` through pgBackRest, set up with the CLI as
    README says (``continuous setup``)."""
    data, port = make_archiving_cluster(root)
    config = root / "ops.yaml"
    config.write_text(yaml.safe_dump({
        "timezone": "Africa/Johannesburg", "objectives": {"rpo_minutes": 15, "rto_minutes": 60},
        "databases": [{"name": "core", "engine": "postgres", "url_env": URL_ENV}], "regions": regions,
        "backup": {"start": "2026-01-01T00:00:00"},
        "restore": {"scratch_dir": str(root)},
        "continuous": {"marker_seconds": 5, "stall_seconds": 10, "pgbackrest_dir": str(root / "pgbackrest"),
                       "postgres": {"core": {"data_directory": str(data), "port": port, "socket_dir": str(root),
                                             "archive_timeout_seconds": ARCHIVE_TIMEOUT}}}}, sort_keys=False))
    cfg = load_config(config)
    monkeypatch.setenv(URL_ENV, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    with archiving_postgres(root, data, port, server_settings(cfg, "core"), env=server_env) as server:
        assert main(["--config", str(config), "continuous", "setup"]) == 0
        yield config, server


@pytest.fixture
def archived(root, monkeypatch):
    """Two local regions: two pgBackRest repositories."""
    with _archiving(root, monkeypatch, [_local(root, "af-south-1"), _local(root, "eu-west-1")]) as made:
        yield made


def _writer(url: str, stop: threading.Event, log: list) -> None:
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE TABLE IF NOT EXISTS bookings_log (id int PRIMARY KEY, who text)")
        n = 0
        while not stop.is_set():
            n += 1
            began = time.time()
            con.execute("INSERT INTO bookings_log (id, who) VALUES (%s, %s)", (n, f"guest {n}"))
            log.append((n, began, time.time()))  # autocommit: committed when execute returns
            time.sleep(0.05)


def _rows_of(data: Path) -> set[int]:
    """Start a restored data directory by hand, as on-call would, and read the table."""
    port = free_ports(1)[0]
    ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "by-hand.log"), "-w",
           "-o", f"-p {port} -c listen_addresses='' -c unix_socket_directories='{data}'"]
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_owner, *ctl, "start"], check=True, capture_output=True)
    try:
        with psycopg.connect(host=str(data), port=port, user="postgres", dbname="postgres") as con:
            assert con.execute("SHOW archive_mode").fetchone()[0] == "off"  # a copy never pushes into the archive
            return {n for (n,) in con.execute("SELECT id FROM bookings_log")}
    finally:
        subprocess.run([*as_owner, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)


def test_the_configuration_names_every_region_and_no_secret(archived):
    config, _server = archived
    cfg = load_config(config)
    text = config_text(cfg)
    assert "repo1-type=posix" in text and "repo2-type=posix" in text and "[core]" in text
    assert f"{cfg.regions[1].path}/continuous/pgbackrest" in text
    assert "archive-push" in server_settings(cfg, "core")["archive_command"]


def test_a_restore_to_a_moment_holds_exactly_the_rows_committed_by_then(archived, capsys, monkeypatch):
    monkeypatch.delenv(URL_ENV)  # an emergency on the database host: base backups and restores need no URL
    _restore_to_a_moment(*archived, capsys)


def test_an_s3_region_over_tls_archives_and_restores_to_a_moment(root, monkeypatch, capsys):
    from ops_project.continuous.pgbackrest import environment
    from tests.conftest import unique
    from tests.servers import ACCESS_KEY, SECRET_KEY, self_signed, start_weed

    cert, key = self_signed(root)
    weed = start_weed(root / "weed", tls=(cert, key))
    try:
        bucket = weed.make_bucket(unique("pgbr"))
        for var, value in (("OPS_T_TLS_ENDPOINT", weed.https_endpoint), ("OPS_T_KEY", ACCESS_KEY),
                           ("OPS_T_SECRET", SECRET_KEY), ("AWS_CA_BUNDLE", str(cert))):
            monkeypatch.setenv(var, value)
        regions = [_local(root, "af-south-1"),
                   {"name": "eu-west-1", "kind": "s3", "bucket": bucket, "endpoint_url_env": "OPS_T_TLS_ENDPOINT",
                    "access_key_id_env": "OPS_T_KEY", "secret_access_key_env": "OPS_T_SECRET"}]
        (root / "pgbackrest").mkdir()
        probe = root / "probe.yaml"
        probe.write_text(yaml.safe_dump({"databases": [{"name": "x", "engine": "sqlite", "path": "x.db"}],
                                         "regions": regions}))
        server_env = {**os.environ, **environment(load_config(probe))}  # as the service's EnvironmentFile gives it
        with _archiving(root, monkeypatch, regions, server_env) as (config, server):
            out = capsys.readouterr().out
            assert "PGBACKREST_REPO2_S3_KEY_SECRET  (OPS_T_SECRET)" in out  # what the service needs, by name
            assert SECRET_KEY not in out and SECRET_KEY not in (root / "pgbackrest" / "pgbackrest.conf").read_text()
            assert weed.https_endpoint not in (root / "pgbackrest" / "pgbackrest.conf").read_text()
            _restore_to_a_moment(config, server, capsys)
            keys = [o["Key"] for o in weed.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
            assert any(k.startswith("continuous/pgbackrest/archive/core/") for k in keys)
    finally:
        weed.stop()


def _restore_to_a_moment(config: Path, server, capsys) -> None:
    root = config.parent
    assert main(["--config", str(config), "continuous", "base-backup"]) == 0
    out = capsys.readouterr().out
    assert "core: full backup" in out and "af-south-1" in out and "eu-west-1" in out
    stop, log = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(server.url, stop, log))
    writer.start()
    try:
        time.sleep(10)
    finally:
        stop.set()
        writer.join()
    time.sleep(ARCHIVE_TIMEOUT + 4)  # the last segment switched and pushed
    moment = datetime.fromtimestamp(log[len(log) // 2][2] + 0.02, UTC)  # mid-way, between two commits
    at = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for region in ("af-south-1", "eu-west-1"):  # archive-push reached both repositories
        target = root / f"restored-{region}"
        code = main(["--config", str(config), "backups", "restore", "--database", "core", "--at", at,
                     "--to", str(target), "--region", region])
        said = capsys.readouterr()
        assert code == 0, said.err
        assert f"as it was at {moment:%Y-%m-%dT%H:%M:%SZ}" in said.out and region in said.out
        got = _rows_of(target)
        committed = {n for n, _began, ended in log if ended <= moment.timestamp()}
        later = {n for n, began, _ended in log if began > moment.timestamp()}
        assert committed and later
        assert committed <= got, f"lost: {sorted(committed - got)[:5]}"
        assert not (later & got), f"restored past the moment: {sorted(later & got)[:5]}"


def test_a_moment_the_archive_cannot_reach_is_refused_and_leaves_nothing(archived, root, capsys):
    config, _server = archived
    before = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    target = root / "nothing-yet"
    code = main(["--config", str(config), "backups", "restore", "--database", "core", "--at", before,
                 "--to", str(target)])
    said = capsys.readouterr()
    assert code == 4 and "no base backup of core" in said.err, said  # no base backup at all: no such backup
    assert not target.exists()
    assert main(["--config", str(config), "continuous", "base-backup"]) == 0
    capsys.readouterr()
    code = main(["--config", str(config), "backups", "restore", "--database", "core", "--at", before,
                 "--to", str(target)])
    err = capsys.readouterr().err
    assert code == 4 and "no base backup of core in eu-west-1 ended before" in err, err  # before the only one
    assert not target.exists()


def test_the_current_rpo_fails_while_archiving_is_broken_and_recovers(archived, capsys):
    config, server = archived
    cfg = load_config(config)
    from ops_project.continuous.markers import write_marker_pg

    def markers_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            write_marker_pg(server.url, keep_hours=1)
            time.sleep(1)

    markers_for(ARCHIVE_TIMEOUT + 3)
    found = survey(cfg, datetime.now(UTC))
    assert [f.status for _, f in found] == ["ok", "ok"], [f.text for _, f in found]
    server.sql("ALTER SYSTEM SET archive_command = '/bin/false'")
    server.sql("SELECT pg_reload_conf()")
    markers_for(12)  # the application keeps writing; nothing reaches the archive
    found = survey(cfg, datetime.now(UTC))
    assert {f.status for _, f in found} == {"stalled"}, [f.text for _, f in found]
    assert "archive_command is failing" in found[0][1].text
    assert main(["--config", str(config), "continuous", "status"]) == 3
    assert "STALLED" in capsys.readouterr().out
    server.sql("ALTER SYSTEM RESET archive_command")
    server.sql("SELECT pg_reload_conf()")
    markers_for(ARCHIVE_TIMEOUT + 4)
    found = survey(cfg, datetime.now(UTC))
    assert [f.status for _, f in found] == ["ok", "ok"], [f.text for _, f in found]
    assert main(["--config", str(config), "continuous", "status"]) == 0


def test_through_dagster_base_backups_markers_and_the_point_in_time_test_feed_the_verified_rpo(archived,
                                                                                              home_instance):
    from dagster import build_sensor_context

    from assets.continuous import CURRENT_RPO_CHECK, PITR_CHECK
    from ops_project.backups.drills import DrillContext, run_drill
    from ops_project.clients import Clients
    from ops_project.continuous.markers import write_marker_pg
    from ops_project.continuous.record import verified_to
    from ops_project.definitions import build_definitions

    config, server = archived
    cfg = load_config(config)
    defs = build_definitions(cfg)
    base = defs.resolve_job_def("continuous_base_backup_job").execute_in_process(instance=home_instance)
    assert base.success
    (mat,) = base.asset_materializations_for_node("continuous_base_backup")
    assert mat.metadata["core_af-south-1_label"].value.endswith("F")  # a full backup in each region
    assert mat.metadata["core_eu-west-1_label"].value.endswith("F")
    sensor = defs.resolve_sensor_def("continuous_replication_sensor")
    sensor.evaluate_tick(build_sensor_context(instance=home_instance, definitions=defs))
    assert server.sql("SELECT count(*) FROM _ops_markers")[0][0] == 1  # the sensor's marker, by the server's clock
    stop = threading.Event()

    def mark():
        while not stop.is_set():
            write_marker_pg(server.url, keep_hours=1)
            time.sleep(1)

    marker = threading.Thread(target=mark)
    marker.start()
    try:
        time.sleep(28)  # a moment after the base backup and before now, both a replication delay away
        result = defs.resolve_job_def("point_in_time_restore_job").execute_in_process(instance=home_instance)
        assert result.success
        check = check_evaluation(result, PITR_CHECK)
        assert check.passed, check.description
        (mat,) = result.asset_materializations_for_node("point_in_time_restore")
        assert "core_achieved_rpo_seconds" in mat.metadata  # a moment was tested, not only the newest
        assert mat.metadata["core_achieved_rpo_seconds"].value <= 3  # a marker a second
        proven = verified_to([Clients(cfg).store(r) for r in cfg.regions], ["core"])["core"]
        assert (datetime.now(UTC) - proven).total_seconds() < 60
        # the whole cluster is not restored again at the next hourly run: its last test passed
        again = defs.resolve_job_def("point_in_time_restore_job").execute_in_process(instance=home_instance)
        assert again.success and "1 not due" in check_evaluation(again, PITR_CHECK).description
        rpo = defs.resolve_job_def("verified_rpo_job").execute_in_process(instance=home_instance)
        assert rpo.success and check_evaluation(rpo, "rpo").passed  # no snapshot was ever verified: the archive counts
        (rmat,) = rpo.asset_materializations_for_node("verified_rpo")
        assert rmat.metadata["core_point_in_time_age_minutes"].value < 1
        current = defs.resolve_job_def("continuous_rpo_job").execute_in_process(instance=home_instance)
        assert current.success and check_evaluation(current, CURRENT_RPO_CHECK).passed
        # the DR drill's point_in_time scenario: the cluster lost now, recovered from the surviving region
        assert cfg.drill_scenarios[-1] == "point_in_time"
        report = run_drill(DrillContext(cfg, {r.name: Clients(cfg).store(r) for r in cfg.secondaries},
                                        database_url=lambda db: server.url, scratch_dir=cfg.restore.scratch_dir),
                           "w", ["point_in_time"])
        (drilled,) = report.results
        assert drilled.passed, drilled.notes
        assert drilled.region == "eu-west-1" and 0 <= drilled.rpo_minutes < 1  # minutes, not hours
        assert any("tables readable" in n for n in drilled.notes), drilled.notes
    finally:
        stop.set()
        marker.join()
    assert not [p for p in Path(cfg.restore.scratch_dir).iterdir() if p.name.startswith("ops-pitr-")]


def test_a_corrupt_archive_is_a_verdict_and_an_unreadable_region_is_not(archived, root, capsys):
    """Bytes in the archive that do not read back: exit 3 (untrusted). A region pgBackRest cannot read: exit 1
    (our environment). Either way nothing is left in the target directory."""
    from ops_project.continuous.markers import write_marker_pg
    from ops_project.continuous.replicas import WAL_SEGMENT

    config, server = archived
    assert main(["--config", str(config), "continuous", "base-backup"]) == 0
    for _ in range(4):
        write_marker_pg(server.url, keep_hours=1)
        time.sleep(1)
    moment = datetime.now(UTC)
    for _ in range(3):  # recovery to a moment stops at the first commit after it: there must be one
        time.sleep(1)
        write_marker_pg(server.url, keep_hours=1)
    time.sleep(ARCHIVE_TIMEOUT + 4)
    at = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    archive = root / "regions" / "eu-west-1" / "continuous" / "pgbackrest" / "archive" / "core"
    segments = [p for p in archive.rglob("*") if p.is_file() and WAL_SEGMENT.search("/" + p.name)]
    assert segments
    kept = {p: p.read_bytes() for p in segments}
    for p in segments:  # every segment's compressed bytes damaged in the middle
        raw = bytearray(kept[p])
        raw[len(raw) // 2] ^= 0xFF
        p.write_bytes(bytes(raw))
    capsys.readouterr()
    target = root / "from-corrupt"
    code = main(["--config", str(config), "backups", "restore", "--database", "core", "--at", at, "--to", str(target)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "could not fetch WAL" in err and not target.exists()
    for p, raw in kept.items():
        p.write_bytes(raw)
    archive.chmod(0o000)
    try:
        code = main(["--config", str(config), "backups", "restore", "--database", "core", "--at", at,
                     "--to", str(target)])
        err = capsys.readouterr().err
        assert code == 1, err  # could not look: not a verdict on the archive
        assert "could not fetch WAL from the region" in err, err
        assert not target.exists()
    finally:
        archive.chmod(0o750)
    assert main(["--config", str(config), "backups", "restore", "--database", "core", "--at", at,
                 "--to", str(target)]) == 0, capsys.readouterr().err
    newest = root / "latest"
    assert main(["--config", str(config), "backups", "restore", "--database", "core", "--at", "latest",
                 "--to", str(newest)]) == 0
    assert "as it was at its newest position (latest)" in capsys.readouterr().out
