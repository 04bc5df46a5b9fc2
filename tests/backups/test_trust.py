"""Verdicts by cause (issue #8, "Wrong verdicts"): the backup's fault fails conclusively, our environment's
fault is inconclusive, and a restore never writes bytes that are not a sound database over anything."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from ops_project.backups.catalog import list_backups
from ops_project.backups.encryption import parse_identities
from ops_project.backups.layout import MANIFEST, backup_prefix
from ops_project.backups.replicate import replicate
from ops_project.backups.restore import find_backup
from ops_project.backups.take import take_backup
from ops_project.backups.verify import record, verify
from ops_project.clients import Clients
from ops_project.common.checks import Outcome
from ops_project.common.errors import IntegrityError
from ops_project.config import load_config
from tests.conftest import local_region, run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def backed_up(tmp_path, demo_db, write_config):
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")])
    cfg = load_config(path)
    primary, dr = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[1])
    manifest = take_backup(cfg.databases[0], primary, cfg.backup)
    replicate(primary, dr, "booking", manifest.backup_id)
    return path, cfg, dr, manifest


def rewrite_plaintext(store, manifest, mutate) -> None:
    """Replace a backup's plaintext and re-seal it honestly (new sha256s and sizes in the manifest): the
    stored bytes then match their manifest, as a backup of a database that was already broken would."""
    prefix = backup_prefix(manifest.database, manifest.backup_id)
    data = Path(store.describe(prefix + manifest.data_object))
    plain = bytearray(zstandard.ZstdDecompressor().decompressobj().decompress(data.read_bytes()))
    plain = mutate(plain)
    stored = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(bytes(plain))
    data.write_bytes(stored)
    import hashlib

    doc = json.loads(store.get_bytes(prefix + MANIFEST))
    doc.update(sha256_stored=hashlib.sha256(stored).hexdigest(), sha256_plaintext=hashlib.sha256(plain).hexdigest(),
               stored_size_bytes=len(stored), source_size_bytes=len(plain))
    store.put_bytes(prefix + MANIFEST, json.dumps(doc).encode())


def not_a_database(plain: bytearray) -> bytearray:
    return bytearray(b"this is not an SQLite file " * (len(plain) // 27))


def zero_a_page(plain: bytearray) -> bytearray:
    page = 4096
    middle = (len(plain) // page // 2) * page
    plain[middle:middle + page] = bytes(page)
    return plain


@pytest.mark.parametrize("mutate", [not_a_database, zero_a_page], ids=["not a database", "zeroed page"])
def test_bytes_that_are_not_a_sound_database_fail_conclusively(backed_up, mutate):
    _path, cfg, dr, manifest = backed_up
    rewrite_plaintext(dr, manifest, mutate)
    entry = find_backup(dr, "booking", manifest.backup_id)
    report = verify(dr, cfg.databases[0], entry.manifest, rto_minutes=120)
    failed = {c.name for c in report.failures}
    assert report.outcome is Outcome.FAILED and report.conclusive, report.markdown()
    assert {"stored_sha256", "plaintext_sha256"}.isdisjoint(failed)  # the bytes are what was written
    assert "engine_integrity" in failed or "content_checksums" in failed, report.markdown()
    assert "this backup cannot be trusted" in report.markdown()
    assert record(dr, report) is True
    (stored,) = list_backups(dr, "booking")
    assert stored.verification["passed"] is False and stored.verification["outcome"] == "failed"


def test_cli_restore_checks_integrity_before_replacing_anything(backed_up, tmp_path):
    path, _cfg, dr, manifest = backed_up
    rewrite_plaintext(dr, manifest, zero_a_page)  # unverified: `restore` itself must catch it
    target = tmp_path / "target.db"
    target.write_bytes(b"the database on-call wants to keep")
    out = subprocess.run([sys.executable, "-m", "ops_project", "--config", str(path), "backups", "restore",
                          "--database", "booking", "--backup-id", manifest.backup_id, "--to", str(target),
                          "--force"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 3, out.stderr
    assert "integrity" in out.stderr and "nothing was replaced" in out.stderr
    assert target.read_bytes() == b"the database on-call wants to keep"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".target")) == []  # no leftovers


def test_wrong_identity_is_our_key_not_the_backup(tmp_path, demo_db, write_config, monkeypatch):
    keys = []
    for name in ("right", "wrong"):
        run(["age-keygen", "-o", str(tmp_path / name)])
        keys.append(tmp_path / name)
    recipient = next(line.split(": ")[1] for line in keys[0].read_text().splitlines() if "public key" in line)
    monkeypatch.setenv("OPS_T_AGE", recipient)
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "r1")], backup={"encryption": {"age_recipients_env": "OPS_T_AGE"}})
    cfg = load_config(path)
    store = Clients(cfg).store(cfg.primary)
    manifest = take_backup(cfg.databases[0], store, cfg.backup, recipients=Clients(cfg).recipients())
    bad = verify(store, cfg.databases[0], manifest, rto_minutes=120,
                 identities=parse_identities(keys[1].read_text(), source="wrong"))
    assert bad.outcome is Outcome.INCONCLUSIVE
    rto = next(c for c in bad.checks if c.name == "rto_within_objective")
    assert not rto.passed and "nothing was restored" in rto.message  # no RTO is measured when nothing was restored
    base = [sys.executable, "-m", "ops_project", "--config", str(path), "backups"]
    restore = subprocess.run([*base, "restore", "--database", "booking", "--region", "r1", "--identity",
                              str(keys[1]), "--to", str(tmp_path / "out.db")], capture_output=True, text=True,
                             cwd=REPO)
    assert restore.returncode == 1, restore.stderr  # like `verify`: exit 1, our key
    assert "identity" in restore.stderr and not (tmp_path / "out.db").exists()
    good = subprocess.run([*base, "restore", "--database", "booking", "--region", "r1", "--identity",
                           str(keys[0]), "--to", str(tmp_path / "out.db")], capture_output=True, text=True, cwd=REPO)
    assert good.returncode == 0, good.stderr
    assert sqlite3.connect(tmp_path / "out.db").execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("change", [
    {"backup_id": "20200101T000000Z"},
    {"database": "other"},
    {"data_object": "../20200101T000000Z/data.sqlite.zst"},
    {"data_object": "manifest.json"},
])
def test_a_manifest_is_bound_to_its_place(backed_up, change):
    path, _cfg, dr, manifest = backed_up
    key = backup_prefix("booking", manifest.backup_id) + MANIFEST
    dr.put_bytes(key, json.dumps({**json.loads(dr.get_bytes(key)), **change}).encode())
    (entry,) = list_backups(dr, "booking")
    assert not entry.complete and entry.problem and "does not belong" in entry.problem
    with pytest.raises(IntegrityError, match="does not belong"):
        find_backup(dr, "booking", manifest.backup_id)
    out = subprocess.run([sys.executable, "-m", "ops_project", "--config", str(path), "backups", "verify",
                          "--database", "booking", "--backup-id", manifest.backup_id], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 3 and "does not belong" in out.stderr


def test_inconclusive_verification_reads_as_could_not_verify_in_dagster(tmp_path, demo_db, write_config, monkeypatch):
    """A wrong key is our failure: the step fails saying so, no check claims the backup is corrupt, and no
    verdict is recorded over the backup's earlier one."""
    from datetime import UTC, datetime

    from dagster import DagsterInstance

    from assets.partitions import backup_partition_key, last_window_key
    from ops_project.definitions import build_definitions

    keys = []
    for name in ("right", "wrong"):
        run(["age-keygen", "-o", str(tmp_path / name)])
        keys.append((tmp_path / name).read_text())
    monkeypatch.setenv("OPS_T_AGE", next(line.split(": ")[1] for line in keys[0].splitlines() if "public key" in line))
    monkeypatch.setenv("OPS_T_AGE_ID", keys[1])  # not the recipient's identity
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                                   backup={"encryption": {"age_recipients_env": "OPS_T_AGE"}},
                                   restore={"age_identity_env": "OPS_T_AGE_ID"}))
    window = last_window_key(cfg, datetime.now(UTC))
    with DagsterInstance.ephemeral() as instance:
        result = build_definitions(cfg).resolve_job_def("backup_job").execute_in_process(
            partition_key=backup_partition_key("booking", window), instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "backup_pipeline"
    message = str(failure.event_specific_data.error)
    assert "could not verify" in message and "inconclusive" in message and "wrong identity" in message
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert not [e for e in evaluations if not e.passed]  # nothing says "stored_sha256 failed"
    dr = Clients(cfg).store(cfg.regions[1])
    (entry,) = list_backups(dr, "booking")
    assert entry.complete and entry.verification is None  # no verdict recorded


def test_list_shows_a_failed_verification_as_untrusted(backed_up):
    path, cfg, dr, manifest = backed_up
    rewrite_plaintext(dr, manifest, not_a_database)
    record(dr, verify(dr, cfg.databases[0], manifest_of(dr, manifest), rto_minutes=120))
    base = [sys.executable, "-m", "ops_project", "--config", str(path), "backups", "list", "--region", "eu-west-1"]
    table = subprocess.run(base, capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert "UNTRUSTED" in table
    (row,) = json.loads(subprocess.run([*base, "--json"], capture_output=True, text=True, cwd=REPO,
                                       check=True).stdout)
    assert row["failed_verification"] is True and row["verified"] is False


def manifest_of(store, manifest):
    return find_backup(store, manifest.database, manifest.backup_id).manifest


def test_every_user_table_is_counted_whatever_its_name(tmp_path, demo_db, write_config):
    """Quotes, brackets, spaces and dots in a name, and a name that merely starts like SQLite's own tables."""
    odd = 'we"ird [t].x y'
    con = sqlite3.connect(demo_db)
    con.execute('CREATE TABLE "we""ird [t].x y" (id INTEGER PRIMARY KEY, "v a""l" TEXT)')
    con.execute("CREATE TABLE sqlitebooks (id INTEGER PRIMARY KEY, title TEXT)")
    con.executemany('INSERT INTO "we""ird [t].x y" ("v a""l") VALUES (?)', [(str(i),) for i in range(7)])
    con.executemany("INSERT INTO sqlitebooks (title) VALUES (?)", [(str(i),) for i in range(5)])
    con.commit()
    con.close()
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "r1")]))
    store = Clients(cfg).store(cfg.primary)
    manifest = take_backup(cfg.databases[0], store, cfg.backup)
    assert manifest.tables[odd].rows == 7 and manifest.tables["sqlitebooks"].rows == 5
    assert "sqlite_sequence" not in manifest.tables
    report = verify(store, cfg.databases[0], manifest, rto_minutes=120)
    assert report.passed, report.markdown()


def test_a_bit_flipped_in_transit_is_re_read_before_the_backup_is_condemned(backed_up):
    """The first read of the object comes back with one flipped bit (a bad link); the copy at rest is fine."""
    from ops_project.storage.local import LocalStore

    _path, cfg, dr, manifest = backed_up

    class FlakyLink(LocalStore):
        flips = 1

        def reader(self, key):
            fh = super().reader(key)
            if not key.endswith("/" + manifest.data_object) or FlakyLink.flips == 0:
                return fh
            FlakyLink.flips -= 1
            import io

            data = bytearray(fh.read())
            fh.close()
            data[len(data) // 2] ^= 0x01
            return io.BytesIO(bytes(data))

    link = FlakyLink(dr.region, dr.root)
    report = verify(link, cfg.databases[0], manifest, rto_minutes=120)
    assert FlakyLink.flips == 0 and report.outcome is Outcome.PASSED, report.markdown()
    FlakyLink.flips = 5  # a flip on every read: the backup is condemned only after the re-read
    report = verify(link, cfg.databases[0], manifest, rto_minutes=120)
    assert report.outcome is Outcome.FAILED and FlakyLink.flips == 2  # two fetches, then the stored-bytes check


def test_leftovers_of_a_killed_run_are_swept(tmp_path, pg_server):
    import os
    import time

    import psycopg

    from ops_project.backups.scratch import scratch_database, scratch_directory

    base = tmp_path / "scratch"
    base.mkdir()
    old, fresh, other = base / "ops-snapshot-abc_1234", base / "ops-verify-def_5678", base / "ops-unrelated-x"
    for d in (old, fresh, other):
        d.mkdir(mode=0o700)
        (d / "snapshot.sqlite").write_bytes(b"plaintext")
    day_ago = time.time() - 2 * 24 * 3600
    for p in (old, old / "snapshot.sqlite", other, other / "snapshot.sqlite"):
        os.utime(p, (day_ago, day_ago))
    with scratch_directory("verify", base) as tmp:
        assert oct(tmp.stat().st_mode & 0o777) == "0o700"  # plaintext lives in a private directory
    assert not old.exists() and fresh.exists() and other.exists()  # only our stale ones go

    stale = f"ops_verify_{int(day_ago)}_deadbeef"
    recent = f"ops_verify_{int(time.time())}_cafe"
    with psycopg.connect(pg_server, autocommit=True) as con:
        for name in (stale, recent):
            con.execute(f'CREATE DATABASE "{name}"')
    try:
        with scratch_database(pg_server, purpose="verify", what="test server") as url:
            assert "ops_verify_" in url
        with psycopg.connect(pg_server, autocommit=True) as con:
            names = {r[0] for r in con.execute("SELECT datname FROM pg_database")}
        assert stale not in names and recent in names
    finally:
        with psycopg.connect(pg_server, autocommit=True) as con:
            for name in (stale, recent):
                con.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _cli(path, *args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops_project", "--config", str(path), "backups", *args],
                          capture_output=True, text=True, cwd=REPO, **kw)


def test_restore_replaces_only_regular_files_and_keeps_owner_and_mode(backed_up, tmp_path):
    import os
    import stat

    path, _cfg, _dr, _manifest = backed_up
    target = tmp_path / "live.db"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    out = _cli(path, "restore", "--database", "booking", "--to", str(target), "--force")
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sqlite3.connect(target).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    for odd in (tmp_path / "a-directory", tmp_path / "a-link"):
        if odd.name == "a-directory":
            odd.mkdir()
        else:
            odd.symlink_to(target)
        out = _cli(path, "restore", "--database", "booking", "--to", str(odd), "--force")
        assert out.returncode == 1 and "not a regular file" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert (tmp_path / "a-directory").is_dir() and (tmp_path / "a-link").is_symlink()


def test_two_restores_into_one_new_path_cannot_both_succeed(backed_up, tmp_path):
    path, _cfg, _dr, _manifest = backed_up
    target = tmp_path / "new.db"
    cmd = [sys.executable, "-m", "ops_project", "--config", str(path), "backups", "restore", "--database",
           "booking", "--to", str(target)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
             for _ in range(2)]
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    assert "already exists" in next(err for code, err in results if code == 1) or \
        "appeared while restoring" in next(err for code, err in results if code == 1)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".new.db")] == []


def test_verify_prints_its_report_even_when_the_verdict_cannot_be_recorded(backed_up):
    path, _cfg, dr, manifest = backed_up
    (Path(dr.describe(backup_prefix("booking", manifest.backup_id))) / "verification.json").mkdir()  # unwritable
    out = _cli(path, "verify", "--database", "booking")
    assert out.returncode == 1, out.stderr
    assert "PASSED" in out.stdout and "could not be recorded" in out.stderr and "Traceback" not in out.stderr


def test_replicate_a_backup_that_missed_a_region(backed_up, tmp_path):
    path, cfg, dr, manifest = backed_up
    import shutil

    shutil.rmtree(dr.describe(backup_prefix("booking", manifest.backup_id)))  # the DR region missed it
    assert list_backups(dr, "booking") == []
    out = _cli(path, "replicate", "--database", "booking")
    assert out.returncode == 0, out.stderr
    assert f"booking {manifest.backup_id} → eu-west-1: copied" in out.stdout
    (entry,) = list_backups(dr, "booking")
    assert entry.complete and entry.manifest.sha256_stored == manifest.sha256_stored
    again = _cli(path, "replicate", "--database", "booking", "--region", "eu-west-1")
    assert again.returncode == 0 and "already there, re-verified" in again.stdout
    assert _cli(path, "replicate", "--database", "booking", "--region", "af-south-1").returncode == 1
    assert _cli(path, "replicate", "--database", "booking", "--backup-id", "19990101T000000Z").returncode == 4


def test_a_missing_region_directory_is_an_error_never_a_new_folder(tmp_path, demo_db, write_config):
    """An NFS share that did not mount must not silently become a folder on the local disk."""
    mount = tmp_path / "mnt" / "backups"
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [{"name": "nfs", "kind": "local", "path": str(mount)}])
    out = _cli(path, "take", "--database", "booking")
    assert out.returncode == 1 and "does not exist" in out.stderr and "mount" in out.stderr, out.stderr
    assert not mount.exists() and not (tmp_path / "mnt").exists()
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [{"name": "disk", "kind": "local", "path": str(mount), "create": True}])
    assert _cli(path, "take", "--database", "booking").returncode == 0 and mount.is_dir()


def test_postgres_checksums_do_not_depend_on_the_scratch_servers_settings(tmp_path, scratch_pg, write_config,
                                                                        monkeypatch):
    """A table checksummed over its text form (json has no hash function) with timestamps, intervals, floats
    and bytes: the production session and the scratch session print them differently, and still agree."""
    import psycopg

    url = scratch_pg()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE TABLE events (id serial PRIMARY KEY, at timestamptz, took interval, ratio float8, "
                    "blob bytea, payload json)")
        con.execute("INSERT INTO events (at, took, ratio, blob, payload) SELECT timestamptz '2026-11-22 04:00+00' "
                    "+ g * interval '7 minutes', g * interval '90 seconds', g / 7.0, decode(md5(g::text), 'hex'), "
                    "json_build_object('g', g) FROM generate_series(1, 500) g")
    production = f"{url}?options=-c%20TimeZone%3DAfrica%2FJohannesburg%20-c%20DateStyle%3DSQL%2CDMY" \
                 f"%20-c%20extra_float_digits%3D0%20-c%20bytea_output%3Descape%20-c%20IntervalStyle%3Dsql_standard"
    monkeypatch.setenv("OPS_T_CORE_URL", production)
    cfg = load_config(write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE_URL"}],
                                   [local_region(tmp_path, "r1")]))
    store = Clients(cfg).store(cfg.primary)
    manifest = take_backup(cfg.databases[0], store, cfg.backup, pg_url=production)
    assert manifest.tables["public.events"].checksum.startswith("md5:")
    assert manifest.checksum_settings and manifest.checksum_settings["TimeZone"] == "UTC"
    report = verify(store, cfg.databases[0], manifest, rto_minutes=120, pg_server_url=url)  # plain defaults
    assert report.passed, report.markdown()


def test_a_question_mark_in_a_path_never_opens_another_file(tmp_path, demo_db, write_config):
    """SQLite URIs: '?' starts the query string unless the path is escaped."""
    import shutil

    odd = tmp_path / "z?1" / "booking.db"
    odd.parent.mkdir()
    shutil.copy(demo_db, odd)
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(odd)}],
                        [local_region(tmp_path, "a")], restore={"scratch_dir": str(tmp_path / "s?x")})
    (tmp_path / "s?x").mkdir()
    assert _cli(path, "take", "--database", "booking", "--quiet").returncode == 0
    assert not (tmp_path / "z").exists() and not (tmp_path / "s").exists()  # nothing opened (or created) there
    cfg = load_config(path)
    (entry,) = list_backups(Clients(cfg).store("a"), "booking")
    assert entry.manifest.total_rows > 1000
    out = _cli(path, "verify", "--database", "booking")
    assert out.returncode == 0, out.stdout + out.stderr
    target = tmp_path / "q?x" / "restored.db"
    assert _cli(path, "restore", "--database", "booking", "--to", str(target)).returncode == 0
    assert sqlite3.connect(target).execute("SELECT count(*) FROM appointments").fetchone()[0] > 0
    assert not (tmp_path / "q").exists()


def test_a_schema_the_rules_do_not_know_never_stops_a_backup(tmp_path, write_config):
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE appointments (id integer primary key, staff_id int, starts_at text, ends_at text)")
    con.execute("INSERT INTO appointments (staff_id, starts_at, ends_at) VALUES (1, '09:00', '10:00')")
    con.commit()
    con.close()
    cfg = load_config(write_config([{"name": "other", "engine": "sqlite", "path": str(db)}],
                                   [local_region(tmp_path, "a")]))
    store = Clients(cfg).store("a")
    manifest = take_backup(cfg.databases[0], store, cfg.backup)  # "status" is missing: the rule does not apply
    assert manifest.tables["appointments"].rows == 1
    report = verify(store, cfg.databases[0], manifest, rto_minutes=120)
    assert report.passed
    assert next(c for c in report.checks if c.name == "booking_invariants").metadata["rules_checked"] == 0


@pytest.mark.parametrize("manifest_text", ["[]", '{"format_version": 1, "tables": []}', "FIELD:data_object=[\"x\"]",
                                           "FIELD:source_size_bytes=\"2199552\"", "FIELD:stored_size_bytes=null",
                                           "FIELD:invariants=[1]", "FIELD:tables={\"t\": {\"rows\": \"1\"}}"])
def test_a_malformed_manifest_is_untrusted_never_a_traceback(backed_up, manifest_text):
    path, _cfg, dr, manifest = backed_up
    key = backup_prefix("booking", manifest.backup_id) + MANIFEST
    if manifest_text.startswith("FIELD:"):
        name, value = manifest_text[6:].split("=", 1)
        manifest_text = json.dumps({**json.loads(dr.get_bytes(key)), name: json.loads(value)})
    dr.put_bytes(key, manifest_text.encode())
    listed = _cli(path, "list", "--region", "eu-west-1")
    assert listed.returncode == 0 and "UNREADABLE" in listed.stdout, listed.stderr
    for verb in (["verify"], ["restore", "--to", str(Path(dr.describe()).parent / "out.db")]):
        out = _cli(path, *verb, "--database", "booking", "--backup-id", manifest.backup_id)
        assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr


def test_a_verification_record_says_passed_only_with_true(backed_up):
    _path, _cfg, dr, manifest = backed_up
    prefix = backup_prefix("booking", manifest.backup_id)
    for record_text, verified, failed in (('{"passed": "false"}', False, False), ("[1]", False, False),
                                          ('{"passed": true}', True, False), ('{"passed": false}', False, True)):
        dr.put_bytes(prefix + "verification.json", record_text.encode())
        (entry,) = list_backups(dr, "booking")
        assert (entry.verified, entry.failed_verification) == (verified, failed), record_text


def test_a_pg_restore_that_cannot_read_the_archive_is_our_tool_not_the_backup(tmp_path, pg_booking, write_config,
                                                                              monkeypatch):
    monkeypatch.setenv("OPS_T_CORE_URL", pg_booking)
    cfg = load_config(write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE_URL"}],
                                   [local_region(tmp_path, "r1")]))
    store = Clients(cfg).store(cfg.primary)
    manifest = take_backup(cfg.databases[0], store, cfg.backup, pg_url=pg_booking)
    fake = tmp_path / "old-client"
    fake.mkdir()
    (fake / "pg_restore").write_text("#!/bin/sh\necho 'pg_restore: error: unsupported version (1.16) in file header'"
                                     " >&2\nexit 1\n")
    (fake / "pg_restore").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    report = verify(store, cfg.databases[0], manifest, rto_minutes=120, pg_server_url=pg_booking)
    assert report.outcome is Outcome.INCONCLUSIVE and "unsupported version" in str(report.error)
    assert record(store, report) is False


def test_the_sweep_takes_only_our_own_stale_directories(tmp_path):
    import time

    from ops_project.backups.scratch import sweep_stale_directories

    base = tmp_path / "scratch"
    base.mkdir()
    ours, notes, shared = base / "ops-verify-ab12cd34", base / "ops-restore-incident-2026-11-20", \
        base / "ops-drill-ef56gh78"
    for d, mode in ((ours, 0o700), (notes, 0o700), (shared, 0o755)):
        d.mkdir()
        d.chmod(mode)
        (d / "f").write_text("x")
        old = time.time() - 3 * 24 * 3600
        for p in (d, d / "f"):
            os.utime(p, (old, old))
    assert sweep_stale_directories(base) == [ours]
    assert notes.exists() and shared.exists()


def test_postgres_restore_keeps_the_source_encoding_and_privileges_or_leaves_nothing(tmp_path, pg_server, scratch_pg,
                                                                                    write_config, monkeypatch):
    """A LATIN1 database verifies (its text checksums compare byte for byte); a restore whose roles are missing
    fails whole and drops the database it created; --no-privileges restores; a non-empty target is refused."""
    import uuid

    import psycopg

    name, role = f"ops_test_latin1_{uuid.uuid4().hex[:8]}", f"ops_t_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
        con.execute(f"CREATE ROLE {role}")
    url = pg_server.rsplit("/", 1)[0] + "/" + name
    target = pg_server.rsplit("/", 1)[0] + f"/{name}_restored"
    try:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text, at timestamptz, payload json)")
            con.execute("INSERT INTO notes (body, at, payload) SELECT 'café crème brûlée ' || g, now(), "
                        "json_build_object('g', g) FROM generate_series(1, 200) g")
            con.execute(f"GRANT SELECT ON notes TO {role}")
        monkeypatch.setenv("OPS_T_LATIN1_URL", url)
        path = write_config([{"name": "latin", "engine": "postgres", "url_env": "OPS_T_LATIN1_URL"}],
                            [local_region(tmp_path, "r1")], restore={"scratch_on_source": True})
        cfg = load_config(path)
        store = Clients(cfg).store(cfg.primary)
        manifest = take_backup(cfg.databases[0], store, cfg.backup, pg_url=url)
        assert manifest.database_encoding == "LATIN1"
        report = verify(store, cfg.databases[0], manifest, rto_minutes=120, pg_server_url=url)
        assert report.passed, report.markdown()
        with psycopg.connect(url, autocommit=True) as con:  # the role goes away after the backup
            con.execute(f"REVOKE SELECT ON notes FROM {role}")
        with psycopg.connect(pg_server, autocommit=True) as con:
            con.execute(f"DROP ROLE {role}")
        kept = _cli(path, "restore", "--database", "latin", "--region", "r1", "--to", target)
        assert kept.returncode == 1 and role in kept.stderr, kept.stderr
        with psycopg.connect(pg_server, autocommit=True) as con:  # nothing half-made is left behind
            assert con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (f"{name}_restored",)).fetchone() \
                is None
        dropped = _cli(path, "restore", "--database", "latin", "--region", "r1", "--to", target, "--no-privileges")
        assert dropped.returncode == 0, dropped.stderr
        with psycopg.connect(target) as con:
            assert con.execute("SELECT count(*), min(body) FROM notes").fetchone() == (200, "café crème brûlée 1")
            assert con.execute("SHOW server_encoding").fetchone()[0] == "LATIN1"
        again = _cli(path, "restore", "--database", "latin", "--region", "r1", "--to", target, "--force",
                     "--no-privileges")
        assert again.returncode == 1 and "already holds 1 tables" in again.stderr and "RENAME" in again.stderr
    finally:
        with psycopg.connect(pg_server, autocommit=True) as con:
            for db in (name, f"{name}_restored"):
                con.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            con.execute(f"DROP ROLE IF EXISTS {role}")


def test_two_takers_in_the_same_second_never_share_a_backup_id(s3_env):
    """Both list the bucket before either writes (S3 shows nothing until a write completes): the reservation,
    a create-if-absent write, decides."""
    import threading
    from datetime import UTC, datetime

    from ops_project.backups.take import reserve_id
    from ops_project.storage import S3Credentials, open_store
    from ops_project.storage.config import RegionConfig
    from tests.conftest import unique
    from tests.servers import ACCESS_KEY, SECRET_KEY

    weed = s3_env[0]
    region = RegionConfig(name="race", kind="s3", bucket=weed.make_bucket(unique("race")))
    at = datetime(2026, 11, 22, 4, 0, 0, tzinfo=UTC)
    for _ in range(5):
        barrier, ids = threading.Barrier(2), []

        def take(barrier: threading.Barrier, ids: list) -> None:
            store = open_store(region, S3Credentials(weed.endpoint, ACCESS_KEY, SECRET_KEY))
            barrier.wait()
            ids.append(reserve_id(store, "booking", at))

        threads = [threading.Thread(target=take, args=(barrier, ids)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ids) == 2 and len(set(ids)) == 2, ids
