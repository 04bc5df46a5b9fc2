"""Backups and replication end to end, with real servers and the stock tools a person would use."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ops_project.backups.catalog import list_backups, read_manifest
from ops_project.backups.engines import postgres as pg_snap
from ops_project.backups.engines.sqlite import ROWS_METHOD, stats_of_file
from ops_project.backups.layout import MANIFEST, backup_prefix
from ops_project.backups.replicate import replicate, verify_stored
from ops_project.backups.retention import apply, plan_region
from ops_project.backups.take import take_backup
from ops_project.clients import Clients
from ops_project.common.errors import (
    BucketMissingError,
    CredentialsError,
    EncryptionError,
    IntegrityError,
    StorageError,
)
from ops_project.config import load_config
from tests.conftest import local_region, run, s3_region, unique
from tests.servers import start_weed

REPO = Path(__file__).resolve().parents[2]


def download(store, database: str, backup_id: str, dest: Path) -> Path:
    manifest = read_manifest(store, database, backup_id)
    out = dest / manifest.data_object
    out.write_bytes(store.get_bytes(backup_prefix(database, backup_id) + manifest.data_object))
    return out


def sqlite_counts(path: Path) -> dict[str, int]:
    con = sqlite3.connect(path)
    names = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def test_sqlite_backup_local_primary_s3_replica_restores_with_stock_tools(tmp_path, demo_db, s3_env, write_config):
    bucket = s3_env[0].make_bucket(unique("eu"))
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1"),
                                    s3_region("eu-west-1", bucket, "OPS_T_ENDPOINT_A")]))
    primary, replica = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[1])
    manifest = take_backup(cfg.databases[0], primary, cfg.backup)
    result = replicate(primary, replica, "booking", manifest.backup_id)
    assert result.copied and result.problem is None and result.lag_seconds >= 0

    # The replica, fetched from SeaweedFS, decompresses with the zstd CLI into the same database.
    stored = download(replica, "booking", manifest.backup_id, tmp_path)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == manifest.sha256_stored
    restored = tmp_path / "restored.db"
    run(["zstd", "-d", "-q", str(stored), "-o", str(restored)])
    assert hashlib.sha256(restored.read_bytes()).hexdigest() == manifest.sha256_plaintext
    counts = sqlite_counts(restored)
    assert counts == {name: t.rows for name, t in manifest.tables.items()}
    assert counts["appointments"] > 1000
    assert run(["sqlite3", str(restored), "PRAGMA integrity_check;"], text=True).stdout.strip() == "ok"
    # no per-table checksum: the plaintext's sha256 (checked above) proves every table's content
    assert manifest.checksum_method == ROWS_METHOD and {t.checksum for t in manifest.tables.values()} == {""}
    assert manifest.schema_fingerprint == stats_of_file(demo_db).schema_fingerprint
    # Fields the manifest promises (README, "Restoring by hand in an emergency").
    raw = json.loads(primary.get_bytes(backup_prefix("booking", manifest.backup_id) + MANIFEST))
    for field in ("format_version", "database", "engine", "backup_id", "partition_key", "snapshot_started_at",
                  "snapshot_finished_at", "source_size_bytes", "stored_size_bytes", "sha256_stored",
                  "sha256_plaintext", "compression", "encryption", "schema_fingerprint", "tables", "tool_versions"):
        assert field in raw
    assert raw["tool_versions"]["sqlite"] and raw["compression"] == {"codec": "zstd", "level": 3}
    # Both regions list it as complete.
    assert [e.backup_id for e in list_backups(replica, "booking") if e.complete] == [manifest.backup_id]


def test_encrypted_backup_decrypts_with_age_cli(tmp_path, demo_db, s3_env, write_config, monkeypatch):
    key = tmp_path / "key.txt"
    run(["age-keygen", "-o", str(key)])
    recipient = next(line.split(": ")[1] for line in key.read_text().splitlines() if "public key" in line)
    monkeypatch.setenv("OPS_T_AGE", f"# on-call key\n{recipient}\n")
    bucket = s3_env[1].make_bucket(unique("enc"))
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [s3_region("af-south-1", bucket, "OPS_T_ENDPOINT_B")],
                                   backup={"encryption": {"age_recipients_env": "OPS_T_AGE"}}))
    store = Clients(cfg).store(cfg.primary)
    manifest = take_backup(cfg.databases[0], store, cfg.backup, recipients=Clients(cfg).recipients())
    assert manifest.data_object == "data.sqlite.zst.age"
    assert manifest.encryption["recipient_fingerprints"] and recipient not in manifest.to_json().decode()
    stored = download(store, "booking", manifest.backup_id, tmp_path)
    restored = tmp_path / "restored.db"
    plain = subprocess.run(["age", "-d", "-i", str(key), str(stored)], check=True, capture_output=True).stdout
    assert not plain.startswith(b"SQLite")  # compressed, then encrypted
    restored.write_bytes(subprocess.run(["zstd", "-d", "-q"], input=plain, check=True, capture_output=True).stdout)
    assert sqlite_counts(restored) == {n: t.rows for n, t in manifest.tables.items()}


def test_bad_recipient_is_a_clear_error_and_stores_nothing(tmp_path, demo_db, write_config, monkeypatch):
    monkeypatch.setenv("OPS_T_AGE", "age1notarealkey")
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "r1")],
                                   backup={"encryption": {"age_recipients_env": "OPS_T_AGE"}}))
    with pytest.raises(EncryptionError, match="OPS_T_AGE.*not an age X25519 recipient"):
        Clients(cfg).recipients()


def test_missing_recipient_variable_via_cli_stores_nothing(tmp_path, demo_db, write_config):
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "r1")],
                        backup={"encryption": {"age_recipients_env": "OPS_T_AGE_UNSET"}})
    proc = subprocess.run([sys.executable, "-m", "ops_project", "--config", str(path), "backups", "take",
                           "--database", "booking"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "OPS_T_AGE_UNSET" in proc.stderr and "not set" in proc.stderr
    assert not (tmp_path / "regions" / "r1" / "backups").exists()


def test_postgres_backup_restores_with_pg_restore(tmp_path, pg_booking, scratch_pg, s3_env, write_config,
                                                  monkeypatch):
    monkeypatch.setenv("OPS_T_CORE_URL", pg_booking)
    bucket = s3_env[1].make_bucket(unique("pg"))
    cfg = load_config(write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE_URL"}],
                                   [local_region(tmp_path, "af-south-1"),
                                    s3_region("eu-west-1", bucket, "OPS_T_ENDPOINT_B")]))
    primary, replica = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[1])
    manifest = take_backup(cfg.databases[0], primary, cfg.backup, pg_url=pg_booking)
    replicate(primary, replica, "core", manifest.backup_id)
    assert manifest.tables["public.appointments"].rows == 40000
    assert manifest.tables["public.appointments"].checksum.startswith("hrx:")
    assert manifest.tables["public.audit_log"].checksum.startswith("md5:")  # json: the fallback
    assert manifest.tool_versions["pg_dump"].startswith("pg_dump")

    stored = download(replica, "core", manifest.backup_id, tmp_path)
    dump = tmp_path / "core.pgdump"
    run(["zstd", "-d", "-q", str(stored), "-o", str(dump)])
    target = scratch_pg()
    run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={target}", str(dump)])
    with psycopg.connect(target) as con:
        restored = pg_snap.table_stats(con)
    assert restored.tables == manifest.tables
    assert restored.schema_fingerprint == manifest.schema_fingerprint
    with psycopg.connect(target, autocommit=True) as con:  # the checksums notice a one-row change
        con.execute("UPDATE appointments SET status = 'no_show' WHERE id = 777")
        con.execute("UPDATE audit_log SET payload = '{\"n\": 0}' WHERE id = 5")
        changed = pg_snap.table_stats(con)
    assert changed.tables["public.appointments"].rows == 40000
    assert changed.tables["public.appointments"].checksum != manifest.tables["public.appointments"].checksum
    assert changed.tables["public.audit_log"].checksum != manifest.tables["public.audit_log"].checksum
    assert changed.tables["public.customers"] == manifest.tables["public.customers"]


def test_postgres_unreachable_names_host_not_password(tmp_path, write_config):
    cfg = load_config(write_config([{"name": "core", "engine": "postgres", "url_env": "X"}],
                                   [local_region(tmp_path, "r1")]))
    from ops_project.common.errors import BackupError

    with pytest.raises(BackupError, match="cannot connect to PostgreSQL at 127.0.0.1:1/nope") as err:
        take_backup(cfg.databases[0], Clients(cfg).store(cfg.primary), cfg.backup,
                    pg_url="postgresql://u:hunter2@127.0.0.1:1/nope")
    assert "hunter2" not in str(err.value)
    assert list(Clients(cfg).store(cfg.primary).list("backups/")) == []


WRITER = r"""
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
con.execute("PRAGMA busy_timeout=30000")
con.execute("PRAGMA synchronous=OFF")
n = 0
while not os.path.exists(sys.argv[2]):
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO ledger(payload) VALUES (randomblob(200))")
    con.execute("UPDATE counter SET n = n + 1")
    con.execute("COMMIT")
    n += 1
    if n == 20:
        print("started", flush=True)
print(n, flush=True)
"""


def test_sqlite_snapshot_is_consistent_while_writers_write(tmp_path, write_config):
    from ops_project.demo.database import generate

    live = generate(tmp_path / "busy.db", 12, seed=5)
    con = sqlite3.connect(live)
    con.executescript("CREATE TABLE ledger (id INTEGER PRIMARY KEY, payload BLOB);"
                      "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0);")
    con.close()
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(live)}],
                                   [local_region(tmp_path, "r1")]))
    stop = tmp_path / "stop"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(live), str(stop)], stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        for w in writers:
            assert w.stdout.readline().strip() == "started"
        store = Clients(cfg).store(cfg.primary)
        manifest = take_backup(cfg.databases[0], store, cfg.backup)
        snap_rows = manifest.tables["ledger"].rows
        deadline = time.monotonic() + 60
        live_con = sqlite3.connect(live, timeout=30)
        while live_con.execute("SELECT count(*) FROM ledger").fetchone()[0] <= snap_rows + 20:
            assert time.monotonic() < deadline, "writers stopped writing after the snapshot"
            time.sleep(0.05)
        live_con.close()
    finally:
        stop.touch()
    written = sum(int(w.stdout.readline()) for w in writers)
    for w in writers:
        assert w.wait(timeout=60) == 0

    restored = tmp_path / "restored.db"
    stored = download(store, "booking", manifest.backup_id, tmp_path)
    run(["zstd", "-d", "-q", str(stored), "-o", str(restored)])
    rcon = sqlite3.connect(restored)
    assert rcon.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ledger = rcon.execute("SELECT count(*) FROM ledger").fetchone()[0]
    counter = rcon.execute("SELECT n FROM counter").fetchone()[0]
    assert ledger == counter, "rows and counter from different points in time"
    assert ledger == snap_rows
    assert 40 <= ledger < written, (ledger, written)  # writers wrote before and after the snapshot


def test_s3_killed_mid_upload_leaves_nothing_complete(tmp_path, write_config, monkeypatch):
    from ops_project.demo.database import generate

    weed = start_weed(tmp_path / "doomed")
    try:
        bucket = weed.make_bucket(unique("doomed"))
        monkeypatch.setenv("OPS_T_ENDPOINT_A", weed.endpoint)
        from tests.servers import ACCESS_KEY, SECRET_KEY

        monkeypatch.setenv("OPS_T_KEY", ACCESS_KEY)
        monkeypatch.setenv("OPS_T_SECRET", SECRET_KEY)
        live = generate(tmp_path / "big.db", 40, seed=9)
        cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(live)}],
                                       [s3_region("r1", bucket, "OPS_T_ENDPOINT_A")],
                                       backup={"part_size_mb": 5, "compression": {"level": 1}}))
        store = Clients(cfg).store(cfg.primary)
        store.client.meta.config.retries["max_attempts"] = 2
        real_writer = store.writer

        def killing_writer(key, size_hint=None):
            writer = real_writer(key, size_hint)
            original, seen = writer.write, {"n": 0}

            def write(data):
                seen["n"] += len(data)
                if seen["n"] > 6 << 20 and weed.proc.poll() is None:
                    weed.kill()  # the server dies after the first part went up
                return original(data)

            writer.write = write
            return writer

        monkeypatch.setattr(store, "writer", killing_writer)
        with pytest.raises(StorageError, match="unreachable|failed"):
            take_backup(cfg.databases[0], store, cfg.backup)
        assert weed.proc.poll() is not None
        weed = start_weed(weed.data_dir, ports=weed.ports)  # the same server, back up
        entries = list_backups(Clients(cfg).store(cfg.primary), "booking")
        assert not any(e.complete for e in entries)
        keys = [o["Key"] for o in weed.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert not any(k.endswith(MANIFEST) for k in keys) and not any("data." in k for k in keys)
        # The interrupted multipart upload is left on the server; retention aborts it once it is old.
        store = Clients(cfg).store(cfg.primary)
        assert [u.key.rsplit("/", 1)[-1] for u in store.unfinished_uploads("backups/")] == ["data.sqlite.zst"]
        assert plan_region(store, cfg.backup.retention, now=datetime.now(UTC), tz=cfg.tz).abort_uploads == []
        later = plan_region(store, cfg.backup.retention, now=datetime.now(UTC) + timedelta(days=2), tz=cfg.tz)
        assert len(later.abort_uploads) == 1 and "abort upload" in later.markdown()
        apply(store, later)
        assert store.unfinished_uploads("backups/") == []
    finally:
        weed.stop()


def test_replica_with_flipped_byte_is_detected_and_repaired(tmp_path, demo_db, write_config):
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "a"), local_region(tmp_path, "b")]))
    primary, replica = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[1])
    manifest = take_backup(cfg.databases[0], primary, cfg.backup)
    replicate(primary, replica, "booking", manifest.backup_id)
    again = replicate(primary, replica, "booking", manifest.backup_id)
    assert not again.copied and again.problem is None  # idempotent: verified, not copied again

    data = Path(replica.describe(backup_prefix("booking", manifest.backup_id) + manifest.data_object))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    assert "sha256" in verify_stored(replica, manifest)
    result = replicate(primary, replica, "booking", manifest.backup_id)
    assert result.repaired and result.copied and "manifest says" in result.problem
    assert verify_stored(replica, manifest) is None


def test_corrupt_primary_is_not_replicated(tmp_path, demo_db, write_config):
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "a"), local_region(tmp_path, "b")]))
    primary, replica = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[1])
    manifest = take_backup(cfg.databases[0], primary, cfg.backup)
    data = Path(primary.describe(backup_prefix("booking", manifest.backup_id) + manifest.data_object))
    data.write_bytes(data.read_bytes()[:-10])  # truncated
    with pytest.raises(IntegrityError, match="primary copy is corrupt"):
        replicate(primary, replica, "booking", manifest.backup_id)
    assert list(replica.list("backups/")) == []


def test_missing_bucket_and_wrong_credentials_store_nothing(tmp_path, demo_db, s3_env, write_config, monkeypatch):
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [s3_region("r1", "bucket-that-is-not-there", "OPS_T_ENDPOINT_A")]))
    with pytest.raises(BucketMissingError, match="bucket-that-is-not-there"):
        take_backup(cfg.databases[0], Clients(cfg).store(cfg.primary), cfg.backup)

    bucket = s3_env[0].make_bucket(unique("creds"))
    monkeypatch.setenv("OPS_T_SECRET", "not-the-secret")
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [s3_region("r1", bucket, "OPS_T_ENDPOINT_A")]))
    with pytest.raises(CredentialsError) as err:
        take_backup(cfg.databases[0], Clients(cfg).store(cfg.primary), cfg.backup)
    assert "OPS_T_SECRET" in str(err.value) and "not-the-secret" not in str(err.value)
    assert not s3_env[0].client().list_objects_v2(Bucket=bucket).get("Contents")


def test_cli_take_and_list_without_dagster(tmp_path, demo_db, write_config):
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "a"), local_region(tmp_path, "b")])
    base = [sys.executable, "-m", "ops_project", "--config", str(path), "backups"]
    take = subprocess.run([*base, "take", "--database", "booking"], capture_output=True, text=True, check=True)
    assert "replicated to b" in take.stdout
    time.sleep(1.1)  # a second backup in another second
    subprocess.run([*base, "take", "--database", "booking", "--quiet"], check=True, capture_output=True)
    listed = json.loads(subprocess.run([*base, "list", "--json"], capture_output=True, text=True, check=True).stdout)
    assert len(listed) == 4 and all(r["complete"] for r in listed)
    assert {r["region"] for r in listed} == {"a", "b"}
    only_b = json.loads(subprocess.run([*base, "list", "--region", "b", "--database", "booking", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert len(only_b) == 2 and only_b[0]["rows"] == sum(sqlite_counts(demo_db).values())
    bad = subprocess.run([*base, "list", "--region", "nowhere"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no region named 'nowhere'" in bad.stderr  # bad usage, not a failure
    # The CLI never imports Dagster (it must work, and start fast, when Dagster is down).
    script = (f"import sys, runpy; sys.argv=['x', '--config', {str(path)!r}, 'backups', 'list']\n"
              "try:\n runpy.run_module('ops_project', run_name='__main__')\nexcept SystemExit: pass\n"
              "print('DAGSTER' if any(m.startswith('dagster') for m in sys.modules) else 'CLEAN')")
    probe = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert probe.stdout.strip().endswith("CLEAN")


def test_backup_window_rules():
    from ops_project.backups.windows import check_window, make_window
    from ops_project.common.errors import WindowClosedError

    start = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    window = make_window("2026-11-22-06:00", start, start + timedelta(hours=4), None)
    with pytest.raises(WindowClosedError, match="cannot be backed up before"):
        check_window(window, start + timedelta(hours=3))  # the window has not ended yet
    check_window(window, start + timedelta(hours=4, minutes=1))
    check_window(window, start + timedelta(hours=7, minutes=59))  # default grace: one window length
    with pytest.raises(WindowClosedError, match="nothing was stored"):
        check_window(window, start + timedelta(hours=8, minutes=1))
    short = make_window("k", start, start + timedelta(hours=4), 30)
    with pytest.raises(WindowClosedError):
        check_window(short, start + timedelta(hours=4, minutes=31))


def test_failed_manifest_write_leaves_nothing_complete(tmp_path, demo_db, write_config, monkeypatch):
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "r1")]))
    store = Clients(cfg).store(cfg.primary)
    real_put = store.put_bytes

    def put(key, data):
        real_put(key, data)  # it lands, and then the call reports a failure (a lost response)
        if key.endswith(MANIFEST):
            raise StorageError("connection reset while writing the manifest")

    monkeypatch.setattr(store, "put_bytes", put)
    with pytest.raises(StorageError, match="connection reset"):
        take_backup(cfg.databases[0], store, cfg.backup)
    entries = list_backups(Clients(cfg).store(cfg.primary), "booking")
    assert len(entries) == 1 and not entries[0].complete  # data left for retention, no manifest
