"""Litestream replicating a database that is being written to, into a local region and SeaweedFS, and restored
to a moment 30 s back: exactly the rows committed by then (give or take the one-second replication delay)."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from ops_project.cli import main
from ops_project.config import load_config
from ops_project.continuous.litestream import litestream_config, restore
from ops_project.continuous.pitr import integrity
from tests.conftest import local_region, s3_region, unique
from tests.servers import SECRET_KEY

SLACK = 3.0  # sync_interval_seconds (1), S3's whole-second object times (1), and a second for the trip


def _writer(path, stop: threading.Event, log: list) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("CREATE TABLE IF NOT EXISTS bookings_log (id INTEGER PRIMARY KEY, who TEXT)")
    n = 0
    while not stop.is_set():
        n += 1
        began = time.time()
        con.execute("INSERT INTO bookings_log (id, who) VALUES (?, ?)", (n, f"guest {n}"))
        log.append((n, began, time.time()))  # autocommit: committed when execute returns
        time.sleep(0.05)
    con.close()


@pytest.fixture
def live(tmp_path, demo_db_template):
    import shutil

    path = tmp_path / "live" / "booking.db"
    path.parent.mkdir()
    shutil.copy(demo_db_template, path)
    return path


def test_a_restore_30_s_back_holds_exactly_the_rows_committed_by_then(tmp_path, live, s3_env, write_config,
                                                                      litestream, capsys):
    bucket = s3_env[0].make_bucket(unique("ls"))
    config = write_config([{"name": "booking", "engine": "sqlite", "path": str(live)}],
                          [local_region(tmp_path, "af-south-1"), s3_region("eu-west-1", bucket, "OPS_T_ENDPOINT_A")],
                          continuous={"databases": ["booking"]})
    cfg = load_config(config)
    text = yaml.safe_dump(litestream_config(cfg))
    assert "${OPS_T_SECRET}" in text and s3_env[0].endpoint not in text  # references, never values
    stop, log = threading.Event(), []
    with litestream(config) as ls:
        ls.wait_replicated()
        writer = threading.Thread(target=_writer, args=(live, stop, log))
        writer.start()
        time.sleep(36)  # the moment is six seconds into the writes
        moment = datetime.now(UTC) - timedelta(seconds=30)
        time.sleep(2)
        stop.set()
        writer.join()
        t = moment.timestamp()
        for region in ("af-south-1", "eu-west-1"):
            out = tmp_path / f"restored-{region}.db"
            done = restore(cfg, cfg.database("booking"), out, at=moment, region=region)
            assert integrity(done.path) == "ok"
            ids = [i for (i,) in sqlite3.connect(out).execute("SELECT id FROM bookings_log ORDER BY id")]
            assert ids == list(range(1, len(ids) + 1)), region  # a prefix of the commits: nothing skipped
            committed = {n for n, _, ended in log if ended <= t - SLACK}
            after = {n for n, began, _ in log if began > t}
            assert committed and committed <= set(ids), (region, len(committed), len(ids))
            assert not after & set(ids), (region, sorted(after & set(ids))[:5])
            # six seconds of writes (about 20 a second), less the slack: the moment is mid-stream. (At four
            # seconds, one second of writes on a loaded machine came to 18 rows: the margin was too thin.)
            assert len(committed) >= 20
        # the command on-call types, to a moment given with an offset
        out = tmp_path / "by-hand.db"
        local = moment.astimezone(cfg.tz).isoformat()
        assert main(["--config", str(config), "backups", "restore", "--database", "booking", "--at", local,
                     "--to", str(out), "--region", "eu-west-1"]) == 0
        assert "PRAGMA integrity_check ok" in capsys.readouterr().out
        by_hand = [i for (i,) in sqlite3.connect(out).execute("SELECT id FROM bookings_log ORDER BY id")]
        assert {n for n, _, e in log if e <= t - SLACK} <= set(by_hand)
        assert not {n for n, b, _ in log if b > t} & set(by_hand)
    logged = (tmp_path / "litestream-0.log").read_text()
    assert "replicating to" in logged and SECRET_KEY not in logged


def test_restoring_to_a_moment_before_the_replica_or_onto_a_file_is_refused_and_loses_nothing(
        tmp_path, live, write_config, litestream, capsys):
    config = write_config([{"name": "booking", "engine": "sqlite", "path": str(live)}],
                          [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                          continuous={})
    with litestream(config) as ls:
        ls.wait_replicated()
        args = ["--config", str(config), "backups", "restore", "--database", "booking", "--to"]
        assert main([*args, str(tmp_path / "x.db"), "--at", "2020-01-01T00:00:00Z"]) == 4  # no backup reaches
        assert "reaches back to 2020-01-01" in capsys.readouterr().err
        assert not (tmp_path / "x.db").exists() and not list(tmp_path.glob(".ops-restore-*"))
        keep = tmp_path / "keep.db"
        keep.write_bytes(b"someone's file")
        assert main([*args, str(keep), "--at", datetime.now(UTC).isoformat()]) == 1
        assert "already exists" in capsys.readouterr().err and keep.read_bytes() == b"someone's file"
        assert main([*args, str(tmp_path / "y.db"), "--at", "2026-11-22T10:42:00"]) == 2  # no zone: refused
        assert "has no time zone" in capsys.readouterr().err
        assert main([*args, str(tmp_path / "y.db"), "--at", "yesterday"]) == 2
