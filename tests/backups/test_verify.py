"""Restore verification, the CLI restore path, and the verifier verified: every planted fault is caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops_project.backups.catalog import list_backups
from ops_project.backups.encryption import parse_identities
from ops_project.backups.engines.sqlite import CHECKSUM_METHOD, stats_of_file
from ops_project.backups.layout import MANIFEST, VERIFICATION, backup_prefix
from ops_project.backups.replicate import replicate
from ops_project.backups.restore import NoBackupError, find_backup
from ops_project.backups.retention import plan_region
from ops_project.backups.rpo import verified_rpo
from ops_project.backups.take import take_backup
from ops_project.backups.verify import record, verify
from ops_project.clients import Clients
from ops_project.config import load_config
from tests.conftest import local_region, run, s3_region, unique
from tests.servers import start_weed


@pytest.fixture
def backed_up(tmp_path, demo_db, write_config):
    """A SQLite backup in two local regions; returns (cfg, primary, dr, manifest)."""
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")]))
    primary, dr = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[1])
    manifest = take_backup(cfg.databases[0], primary, cfg.backup)
    replicate(primary, dr, "booking", manifest.backup_id)
    return cfg, primary, dr, manifest


def data_path(store, manifest) -> Path:
    return Path(store.describe(backup_prefix(manifest.database, manifest.backup_id) + manifest.data_object))


def test_good_backup_passes_every_check_and_is_recorded(backed_up):
    cfg, _primary, dr, manifest = backed_up
    report = verify(dr, cfg.databases[0], manifest, rto_minutes=120)
    assert report.passed, report.markdown()
    assert {c.name for c in report.checks} == {"stored_sha256", "plaintext_sha256", "engine_integrity",
                                               "schema_fingerprint", "row_counts", "content_checksums",
                                               "booking_invariants", "live_data_invariants",
                                               "rto_within_objective"}
    invariants = next(c for c in report.checks if c.name == "booking_invariants")
    assert invariants.metadata["rules_checked"] == 5 and invariants.metadata["staff_double-booked"] == 0
    assert report.timings.total > 0 and report.timings.checks > 0
    record(dr, report)
    (entry,) = list_backups(dr, "booking")
    assert entry.verified and entry.verification["passed"] is True


def test_invariant_violation_is_caught(tmp_path, demo_db, write_config):
    import sqlite3

    con = sqlite3.connect(demo_db)  # double-book a staff member, then back it up
    a = con.execute("SELECT staff_id, starts_at, ends_at FROM appointments WHERE status <> 'cancelled' "
                    "LIMIT 1").fetchone()
    con.execute("INSERT INTO appointments (tenant_id, customer_id, staff_id, service_id, starts_at, ends_at, status, "
                "created_at) SELECT tenant_id, customer_id, staff_id, service_id, starts_at, ends_at, 'booked', "
                "created_at FROM appointments WHERE staff_id = ? AND starts_at = ?", (a[0], a[1]))
    con.commit()
    con.close()
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "r1")]))
    store = Clients(cfg).store(cfg.primary)
    manifest = take_backup(cfg.databases[0], store, cfg.backup)
    # an SQLite backup leaves the rules to restore verification: the restore is the snapshot, byte for byte
    assert manifest.invariants is None
    report = verify(store, cfg.databases[0], manifest, rto_minutes=120)
    assert report.passed, report.markdown()  # faithfully copied: not corruption, and every later backup stays usable
    assert [c.name for c in report.failures] == ["live_data_invariants"]  # but it is reported, as a warning
    assert not report.failures[0].blocking and "1 × staff double-booked" in report.failures[0].message
    # A restore that changes the counts is corruption: re-seal the backup with the double booking removed.
    import hashlib

    import zstandard

    prefix = backup_prefix("booking", manifest.backup_id)
    restored = tmp_path / "restored.db"
    restored.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(
        store.get_bytes(prefix + manifest.data_object)))
    con = sqlite3.connect(restored)
    con.execute("DELETE FROM appointments WHERE id = (SELECT max(id) FROM appointments)")
    con.commit()
    con.execute("VACUUM")
    con.close()
    plain = restored.read_bytes()
    stored = zstandard.ZstdCompressor().compress(plain)
    store.put_bytes(prefix + manifest.data_object, stored)
    doc = json.loads(store.get_bytes(prefix + MANIFEST))
    doc.update(sha256_stored=hashlib.sha256(stored).hexdigest(), sha256_plaintext=hashlib.sha256(plain).hexdigest(),
               stored_size_bytes=len(stored), source_size_bytes=len(plain))
    store.put_bytes(prefix + MANIFEST, json.dumps(doc).encode())
    report = verify(store, cfg.databases[0], find_backup(store, "booking", manifest.backup_id).manifest,
                    rto_minutes=120)
    failed = {c.name: c.message for c in report.failures}
    assert not report.passed and "row counts differ" in failed["content_checksums"]
    assert "appointments: " in failed["row_counts"]
    # a manifest that recorded the rules' counts at snapshot time (as backups before issue 14 did) is held to them
    doc["invariants"] = {**dict.fromkeys(doc.get("invariants") or {}, 0), "staff double-booked": 1}
    store.put_bytes(prefix + MANIFEST, json.dumps(doc).encode())
    report = verify(store, cfg.databases[0], find_backup(store, "booking", manifest.backup_id).manifest,
                    rto_minutes=120)
    failed = {c.name: c.message for c in report.failures}
    assert not report.passed and "booking_invariants" in failed
    assert "staff double-booked: 0 restored, 1 at snapshot" in failed["booking_invariants"]


# --- the verifier verified: each fault planted on purpose must be caught, naming the object -----------

def _flip(store, manifest):
    p = data_path(store, manifest)
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    p.write_bytes(bytes(raw))


def _truncate(store, manifest):
    p = data_path(store, manifest)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _alter_manifest(field_path):
    def plant(store, manifest):
        key = backup_prefix(manifest.database, manifest.backup_id) + MANIFEST
        doc = json.loads(store.get_bytes(key))
        table = doc["tables"]["appointments"]
        if field_path == "rows":
            table["rows"] += 1
        elif field_path == "plaintext":
            doc["sha256_plaintext"] = "0" * 64
        else:
            table["checksum"] = "0" * len(table["checksum"])
        store.put_bytes(key, json.dumps(doc).encode())
    return plant


def as_older_manifest(store, manifest, snapshot: Path) -> None:
    """Rewrite the manifest as backups before issue 14 wrote it: every table's content checksum, computed from
    the snapshot's bytes (``snapshot``: the database file the backup holds)."""
    key = backup_prefix(manifest.database, manifest.backup_id) + MANIFEST
    doc = json.loads(store.get_bytes(key))
    doc["checksum_method"] = CHECKSUM_METHOD
    doc["tables"] = {n: {"rows": t.rows, "checksum": t.checksum} for n, t in stats_of_file(snapshot).tables.items()}
    store.put_bytes(key, json.dumps(doc).encode())


FAULTS = {
    # name: (plant, checks that must fail)
    "flipped byte": (_flip, {"stored_sha256"}),
    "truncated object": (_truncate, {"stored_sha256"}),
    "manifest row count altered": (_alter_manifest("rows"), {"row_counts"}),
    # the plaintext's sha256 is what proves an SQLite backup's content: a restore that does not match it is not
    # the snapshot, whatever its row counts say
    "manifest plaintext sha256 altered": (_alter_manifest("plaintext"), {"plaintext_sha256", "content_checksums"}),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_verifier_catches_planted_fault(backed_up, fault):
    cfg, _primary, dr, manifest = backed_up
    plant, must_fail = FAULTS[fault]
    plant(dr, manifest)
    entry = find_backup(dr, "booking", manifest.backup_id)
    report = verify(dr, cfg.databases[0], entry.manifest, rto_minutes=120)
    failed = {c.name for c in report.failures}
    assert not report.passed and must_fail <= failed, (fault, failed)
    assert manifest.backup_id in report.markdown() and "FAILED" in report.markdown()
    messages = " ".join(c.message for c in report.failures)
    if fault in ("flipped byte", "truncated object"):  # the stored object, expected and actual sums
        assert manifest.sha256_stored in messages and dr.describe(backup_prefix("booking", manifest.backup_id)) in \
            report.object_url, report.markdown()
    elif fault == "manifest plaintext sha256 altered":
        assert "0" * 64 in messages and "not the snapshot's" in messages, report.markdown()
    else:  # the table whose numbers were altered
        assert "appointments:" in messages and "manifest" in messages, report.markdown()
    assert report.conclusive
    record(dr, report)
    (stored,) = list_backups(dr, "booking")
    assert not stored.verified  # a failed verification never marks a backup good
    assert verified_rpo([dr], "booking", 240, now=datetime.now(UTC)).verified_backup_id is None


def test_a_backup_from_before_issue_14_is_still_verified_by_its_content_checksums(backed_up, demo_db, tmp_path):
    """Older manifests carry every table's content checksum: verification still computes and compares them."""
    cfg, _primary, dr, manifest = backed_up
    snapshot = tmp_path / "snapshot.db"
    run(["zstd", "-d", "-q", str(data_path(dr, manifest)), "-o", str(snapshot)])
    as_older_manifest(dr, manifest, snapshot)
    entry = find_backup(dr, "booking", manifest.backup_id)
    assert entry.manifest.checksum_method == CHECKSUM_METHOD
    report = verify(dr, cfg.databases[0], entry.manifest, rto_minutes=120)
    assert report.passed, report.markdown()
    content = next(c for c in report.checks if c.name == "content_checksums")
    assert content.message == f"{len(entry.manifest.tables)} tables match"
    _alter_manifest("checksum")(dr, manifest)
    report = verify(dr, cfg.databases[0], find_backup(dr, "booking", manifest.backup_id).manifest, rto_minutes=120)
    failed = {c.name for c in report.failures}
    assert failed == {"content_checksums"}, report.markdown()
    assert "appointments: " in report.markdown()


def test_missing_manifest_is_named(backed_up):
    cfg, _primary, dr, manifest = backed_up
    dr.delete(backup_prefix("booking", manifest.backup_id) + MANIFEST)
    with pytest.raises(NoBackupError, match=r"manifest\.json is missing.*incomplete"):
        find_backup(dr, "booking", manifest.backup_id)
    with pytest.raises(NoBackupError, match="no complete backup of booking"):
        find_backup(dr, "booking", "latest")


def test_wrong_age_identity_is_caught(tmp_path, demo_db, write_config, monkeypatch):
    keys = []
    for name in ("right", "wrong"):
        run(["age-keygen", "-o", str(tmp_path / name)])
        keys.append((tmp_path / name).read_text())
    recipient = next(line.split(": ")[1] for line in keys[0].splitlines() if "public key" in line)
    monkeypatch.setenv("OPS_T_AGE", recipient)
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "r1")],
                                   backup={"encryption": {"age_recipients_env": "OPS_T_AGE"}}))
    store = Clients(cfg).store(cfg.primary)
    manifest = take_backup(cfg.databases[0], store, cfg.backup, recipients=Clients(cfg).recipients())
    good = verify(store, cfg.databases[0], manifest, rto_minutes=120,
                  identities=parse_identities(keys[0], source="right"))
    assert good.passed, good.markdown()
    bad = verify(store, cfg.databases[0], manifest, rto_minutes=120,
                 identities=parse_identities(keys[1], source="wrong"))
    failed = {c.name: c.message for c in bad.failures}
    assert not bad.passed and "stored_sha256" not in failed  # the bytes are fine: the key is wrong
    assert not bad.conclusive and record(store, bad) is False  # so the backup's verdict is not overwritten
    assert "age decryption failed" in failed["plaintext_sha256"] and "wrong identity" in failed["plaintext_sha256"]
    assert str(store.describe(backup_prefix("booking", manifest.backup_id))) in failed["plaintext_sha256"]


def test_region_unreachable_mid_download(tmp_path, write_config, monkeypatch):
    from ops_project.demo.database import generate
    from tests.servers import ACCESS_KEY, SECRET_KEY

    weed = start_weed(tmp_path / "weed")
    try:
        bucket = weed.make_bucket(unique("mid"))
        for k, v in (("OPS_T_ENDPOINT_A", weed.endpoint), ("OPS_T_KEY", ACCESS_KEY), ("OPS_T_SECRET", SECRET_KEY)):
            monkeypatch.setenv(k, v)
        live = generate(tmp_path / "big.db", 4, seed=4)
        import sqlite3

        con = sqlite3.connect(live)  # 48 MiB that do not compress: more than any socket buffer holds
        con.execute("CREATE TABLE attachments (id INTEGER PRIMARY KEY, body BLOB)")
        con.executemany("INSERT INTO attachments (body) VALUES (?)", [(os.urandom(1 << 20),) for _ in range(48)])
        con.commit()
        con.close()
        cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(live)}],
                                       [s3_region("r1", bucket, "OPS_T_ENDPOINT_A")],
                                       backup={"compression": {"level": 1}}))
        store = Clients(cfg).store(cfg.primary)
        store.client.meta.config.retries["max_attempts"] = 1
        manifest = take_backup(cfg.databases[0], store, cfg.backup)
        killed = threading.Event()

        def progress(done: int, total: int) -> None:
            if done >= 1 << 20 and not killed.is_set():
                killed.set()
                weed.kill()

        report = verify(store, cfg.databases[0], manifest, rto_minutes=120, progress=progress)
        assert killed.is_set() and not report.passed and not report.conclusive
        failed = {c.name: c.message for c in report.failures}
        assert "stored_sha256" in failed
        assert f"s3://{bucket}/backups/booking/{manifest.backup_id}" in " ".join(failed.values())
        assert "unreachable" in " ".join(failed.values()) or "failed" in " ".join(failed.values())
    finally:
        weed.stop()


def test_scratch_disk_too_small(backed_up, tmp_path):
    cfg, _primary, dr, manifest = backed_up
    small = tmp_path / "small"
    small.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True,
                       capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.fail(f"this test needs to mount a 1 MiB tmpfs (root): {exc}", pytrace=False)
    try:
        report = verify(dr, cfg.databases[0], manifest, rto_minutes=120, scratch_dir=small)
        assert not report.passed
        message = " ".join(c.message for c in report.failures)
        assert "No space left on device" in message and "free space" in message
        assert dr.describe(backup_prefix("booking", manifest.backup_id)) in message
        assert os.listdir(small) == []  # the partial restore was removed
        assert not report.conclusive  # our disk, not the backup: a previous verdict stands
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_retention_protects_newest_verified_and_rpo_counts_only_verified(tmp_path, demo_db, write_config):
    import time

    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "r1")],
                                   backup={"retention": {"keep_last": 1, "daily": 0, "weekly": 0, "monthly": 0}}))
    store = Clients(cfg).store(cfg.primary)
    first = take_backup(cfg.databases[0], store, cfg.backup)
    assert verified_rpo([store], "booking", 240, now=datetime.now(UTC)).ok is False
    record(store, verify(store, cfg.databases[0], first, rto_minutes=120))
    time.sleep(1.05)
    second = take_backup(cfg.databases[0], store, cfg.backup)  # newer, never verified
    now = datetime.now(UTC)
    status = verified_rpo([store], "booking", 240, now=now)
    assert status.ok and status.verified_backup_id == first.backup_id and status.newest_backup_id == second.backup_id
    plan = plan_region(store, cfg.backup.retention, now=now, tz=cfg.tz)
    kept = {bid: reasons for (_, bid), reasons in plan.keep.items()}
    assert "newest verified" in kept[first.backup_id] and "keep_last" in kept[second.backup_id]
    assert plan.delete == []
    late = verified_rpo([store], "booking", 240, now=now + timedelta(hours=5))
    assert not late.ok and "objective 240 min" in late.message()


def test_cli_verify_restore_and_exit_codes(backed_up, tmp_path):
    cfg, _primary, dr, manifest = backed_up
    base = [sys.executable, "-m", "ops_project", "--config", str(cfg.source), "backups"]
    ok = subprocess.run([*base, "verify", "--database", "booking", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["passed"] is True and json.loads(ok.stdout)["region"] == "eu-west-1"
    assert dr.exists(backup_prefix("booking", manifest.backup_id) + VERIFICATION)

    out = tmp_path / "restored" / "booking.db"
    res = subprocess.run([*base, "restore", "--database", "booking", "--backup-id", manifest.backup_id,
                          "--to", str(out), "--progress"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "MiB" in res.stderr and "sha256 verified" in res.stdout
    assert run(["sqlite3", str(out), "PRAGMA integrity_check;"], text=True).stdout.strip() == "ok"
    again = subprocess.run([*base, "restore", "--database", "booking", "--to", str(out)], capture_output=True,
                           text=True)
    assert again.returncode == 1 and "already exists" in again.stderr

    _flip(dr, manifest)
    bad = subprocess.run([*base, "verify", "--database", "booking"], capture_output=True, text=True)
    assert bad.returncode == 3 and "FAILED" in bad.stdout
    # "latest" never picks a backup that failed verification...
    skipped = subprocess.run([*base, "restore", "--database", "booking", "--to", str(tmp_path / "x.db")],
                             capture_output=True, text=True)
    assert skipped.returncode == 4 and "has not failed restore verification" in skipped.stderr
    # ...and asked for by id, the corrupt object is refused before anything is put at --to.
    refused = subprocess.run([*base, "restore", "--database", "booking", "--backup-id", manifest.backup_id,
                              "--to", str(tmp_path / "x.db")], capture_output=True, text=True)
    assert refused.returncode == 3 and "corrupt" in refused.stderr and not (tmp_path / "x.db").exists()
    assert not list((tmp_path).glob(".x.db.restoring-*"))
    missing = subprocess.run([*base, "restore", "--database", "booking", "--backup-id", "20200101T000000Z",
                              "--to", str(tmp_path / "y.db")], capture_output=True, text=True)
    assert missing.returncode == 4 and "no backup 20200101T000000Z" in missing.stderr
    # The primary still holds the good copy: verifying from it works.
    primary_ok = subprocess.run([*base, "verify", "--database", "booking", "--region", "af-south-1"],
                                capture_output=True, text=True)
    assert primary_ok.returncode == 0


def test_by_hand_restore_with_stock_tools_matches_manifest(backed_up, tmp_path):
    """The README's emergency path: sha256sum, zstd -d, sqlite3 — no project code."""
    _cfg, _primary, dr, manifest = backed_up
    stored = data_path(dr, manifest)
    digest = run(["sha256sum", str(stored)], text=True).stdout.split()[0]
    assert digest == manifest.sha256_stored
    out = tmp_path / "by-hand.db"
    run(["zstd", "-d", "-q", str(stored), "-o", str(out)])
    counts = run(["sqlite3", str(out), "SELECT count(*) FROM appointments; PRAGMA integrity_check;"],
                 text=True).stdout.split()
    assert int(counts[0]) == manifest.tables["appointments"].rows and counts[1] == "ok"


def test_postgres_verification_restores_into_a_scratch_database(tmp_path, pg_booking, write_config, monkeypatch):
    import psycopg

    monkeypatch.setenv("OPS_T_CORE_URL", pg_booking)
    cfg = load_config(write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_T_CORE_URL"}],
                                   [local_region(tmp_path, "r1")]))
    store = Clients(cfg).store(cfg.primary)
    manifest = take_backup(cfg.databases[0], store, cfg.backup, pg_url=pg_booking)
    report = verify(store, cfg.databases[0], manifest, rto_minutes=120, pg_server_url=pg_booking)
    assert report.passed, report.markdown()
    integrity = next(c for c in report.checks if c.name == "engine_integrity")
    assert "btree indexes checked" in integrity.metadata["amcheck"]
    assert report.timings.restore > 0
    with psycopg.connect(pg_booking) as con:  # the scratch database is gone again
        left = con.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'ops_verify_core_%'").fetchone()[0]
    assert left == 0
    # A dump that pg_restore rejects, stored with matching hashes (as if the dump itself had been bad):
    # engine_integrity fails, and so does everything that needs the restored database.
    import dataclasses
    import hashlib

    import zstandard

    bogus = b"PGDMP" + b"\0" * 100
    stored = zstandard.ZstdCompressor().compress(bogus)
    bad = dataclasses.replace(manifest, backup_id="20200101T000000Z", sha256_stored=hashlib.sha256(stored).hexdigest(),
                              sha256_plaintext=hashlib.sha256(bogus).hexdigest(), stored_size_bytes=len(stored),
                              source_size_bytes=len(bogus))
    store.put_bytes(backup_prefix("core", bad.backup_id) + bad.data_object, stored)
    store.put_bytes(backup_prefix("core", bad.backup_id) + MANIFEST, bad.to_json())
    report = verify(store, cfg.databases[0], bad, rto_minutes=120, pg_server_url=pg_booking)
    failed = {c.name: c.message for c in report.failures}
    assert not report.passed and report.conclusive
    assert "pg_restore" in failed["engine_integrity"] and {"row_counts", "content_checksums"} <= set(failed)
    assert {"stored_sha256", "plaintext_sha256"}.isdisjoint(failed)


def test_missing_data_object_is_conclusive_and_latest_skips_known_bad(backed_up):
    import time

    cfg, primary, dr, first = backed_up
    record(dr, verify(dr, cfg.databases[0], first, rto_minutes=120))
    time.sleep(1.05)
    second = take_backup(cfg.databases[0], primary, cfg.backup)
    replicate(primary, dr, "booking", second.backup_id)
    record(dr, verify(dr, cfg.databases[0], second, rto_minutes=120))
    data_path(dr, second).unlink()  # a lifecycle rule ate the data: the manifest still promises it
    report = verify(dr, cfg.databases[0], second, rto_minutes=120)
    assert not report.passed and report.conclusive and "does not exist" in report.failures[0].message
    assert record(dr, report) is True
    verified = {e.backup_id: e.verified for e in list_backups(dr, "booking")}
    assert verified == {first.backup_id: True, second.backup_id: False}
    assert verified_rpo([dr], "booking", 240, now=datetime.now(UTC)).verified_backup_id == first.backup_id
    assert find_backup(dr, "booking", "latest").backup_id == first.backup_id  # never the known-bad one
