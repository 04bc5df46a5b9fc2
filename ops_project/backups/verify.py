"""Restore verification: restore a backup into scratch and prove it whole, check by check.

Each check is a verdict an on-call engineer can read: what was compared, the numbers, pass or
fail. ``blocking`` checks mean "this backup cannot be trusted". A passing verification is
recorded next to the backup (``verification.json``); retention and the verified RPO rely on it.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ops_project.backups.blame import blame
from ops_project.backups.checklist import CHECKS
from ops_project.backups.engines import SnapshotStats
from ops_project.backups.layout import VERIFICATION, backup_prefix
from ops_project.backups.manifest import Manifest
from ops_project.backups.replicate import stored_sha256
from ops_project.backups.restore import Fetched, Timings, WrongIdentityError, fetch, restore_postgres
from ops_project.backups.scratch import scratch_database, scratch_directory
from ops_project.common.checks import Check, Outcome, all_passed, render
from ops_project.common.config import DatabaseConfig
from ops_project.common.errors import (
    CorruptDatabaseError,
    IntegrityError,
    ObjectMissingError,
    OpsError,
    ScratchServerError,
    StorageError,
)
from ops_project.common.streams import Progress
from ops_project.storage import ObjectStore

if TYPE_CHECKING:
    import psycopg



def _check(name: str, passed: bool, message: str, metadata: dict | None = None) -> Check:
    """A check of this verification; whether it blocks comes from ``CHECKS``."""
    return Check(name, passed, message, metadata or {}, blocking=CHECKS[name][0])


@dataclass
class Report:
    database: str
    backup_id: str
    partition_key: str | None
    region: str
    object_url: str
    checks: list[Check]
    timings: Timings
    rto_seconds: float
    verified_at: str
    error: BaseException | None = None  # what stopped the verification, if anything

    @property
    def outcome(self) -> Outcome:
        """INCONCLUSIVE when our environment stopped the verification; else the checks' verdict."""
        if self.error is not None and blame(self.error) is Outcome.INCONCLUSIVE:
            return Outcome.INCONCLUSIVE
        return Outcome.PASSED if all_passed(self.checks) and self.error is None else Outcome.FAILED

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def conclusive(self) -> bool:
        return self.outcome is not Outcome.INCONCLUSIVE

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def markdown(self) -> str:
        verdict = {Outcome.PASSED: "PASSED", Outcome.FAILED: "FAILED: this backup cannot be trusted",
                   Outcome.INCONCLUSIVE: "could not verify (inconclusive: our environment failed, not the backup; "
                                         "an earlier verdict stands)"}[self.outcome]
        t = self.timings
        return render(f"Restore verification of `{self.database}` backup `{self.backup_id}`: {verdict}", self.checks,
                      before=[f"From region `{self.region}` ({self.object_url})."],
                      after=[f"Phases: download {t.download:.2f}s, decrypt+decompress {t.decode:.2f}s, restore "
                             f"{t.restore:.2f}s, checks {t.checks:.2f}s; total {t.total:.2f}s against an RTO of "
                             f"{self.rto_seconds:.0f}s."])

    def record(self) -> bytes:
        doc = {"database": self.database, "backup_id": self.backup_id, "partition_key": self.partition_key,
               "region": self.region, "passed": self.passed, "conclusive": self.conclusive,
               "outcome": self.outcome.value, "error": str(self.error) if self.error is not None else None,
               "verified_at": self.verified_at,
               "timings": {**asdict(self.timings), "total": self.timings.total},
               "checks": [{"name": c.name, "passed": c.passed, "message": c.message} for c in self.checks]}
        return (json.dumps(doc, indent=2) + "\n").encode()


def _compare_stats(manifest: Manifest, actual: SnapshotStats) -> list[Check]:
    checks = [_check("schema_fingerprint", actual.schema_fingerprint == manifest.schema_fingerprint,
                    "matches" if actual.schema_fingerprint == manifest.schema_fingerprint else
                    f"restored {actual.schema_fingerprint[:16]}…, manifest {manifest.schema_fingerprint[:16]}…",
                    {"expected": manifest.schema_fingerprint, "actual": actual.schema_fingerprint})]
    tables = sorted(set(manifest.tables) | set(actual.tables))
    bad_counts, bad_sums = [], []
    for name in tables:
        want, got = manifest.tables.get(name), actual.tables.get(name)
        if want is None or got is None:
            bad_counts.append(f"{name}: {'missing from restore' if got is None else 'not in manifest'}")
            continue
        if want.rows != got.rows:
            bad_counts.append(f"{name}: {got.rows} rows, manifest {want.rows}")
        if want.checksum != got.checksum:
            bad_sums.append(f"{name}: {got.checksum}, manifest {want.checksum}")
    total = sum(t.rows for t in actual.tables.values())
    checks.append(_check("row_counts", not bad_counts,
                        f"{len(tables)} tables, {total} rows match" if not bad_counts else "; ".join(bad_counts),
                        {"tables": len(tables), "rows_restored": total, "rows_in_manifest": manifest.total_rows}))
    checks.append(_check("content_checksums", not bad_sums and not bad_counts,
                        f"{len(tables)} tables match" if not (bad_sums or bad_counts) else
                        "; ".join(bad_sums or ["row counts differ"]), {"mismatched_tables": len(bad_sums)}))
    return checks


def _invariant_checks(restored: dict[str, int], manifest: Manifest, *, snapshot_bytes: bool | None = None) \
        -> list[Check]:
    """``booking_invariants`` (blocking): the restore keeps the rule counts the live database had when the
    snapshot was taken. ``live_data_invariants`` (warning): the live database itself kept the rules then.
    A backup faithfully copies a double booking that exists in the live database: that is not corruption.

    An SQLite backup records no counts (``snapshot_bytes`` says whether the restore is the snapshot byte for
    byte): its restore's counts are the snapshot's when the plaintext's sha256 matches, and unknown when not.
    Other manifests written before these counts were recorded fall back to "no violation at all"."""
    meta = {"rules_checked": len(restored), **{k.replace(" ", "_"): n for k, n in restored.items()}}
    if not restored:
        return [_check("booking_invariants", True, "not a booking schema: no rule applies", meta),
                _check("live_data_invariants", True, "not a booking schema: no rule applies")]
    if manifest.invariants is None and snapshot_bytes is False:
        return [_check("booking_invariants", False, "the restored bytes are not the snapshot's (plaintext_sha256 "
                                                    "differs): the counts at snapshot time are unknown", meta),
                _check("live_data_invariants", False, "unknown: the restore is not the snapshot")]
    at_snapshot = manifest.invariants if manifest.invariants is not None else \
        dict(restored) if snapshot_bytes else dict.fromkeys(restored, 0)
    changed = [f"{name}: {restored.get(name, 0)} restored, {at_snapshot.get(name, 0)} at snapshot"
               for name in sorted(set(restored) | set(at_snapshot))
               if restored.get(name, 0) != at_snapshot.get(name, 0)]
    live = [f"{n} × {name}" for name, n in sorted(at_snapshot.items()) if n]
    return [
        _check("booking_invariants", not changed, f"{len(restored)} rules: counts as in the live database at "
               f"snapshot time" if not changed else "the restore changed them: " + "; ".join(changed), meta),
        _check("live_data_invariants", not live, "the live database kept every rule at snapshot time" if not live
               else "the live database already had " + ", ".join(live) + " when the snapshot was taken (copied "
               "faithfully: fix it in the live database)", {f"live_{k.replace(' ', '_')}": n
                                                          for k, n in at_snapshot.items()}),
    ]


def _verify_sqlite(path: Path, manifest: Manifest, plaintext_ok: bool) -> list[Check]:
    """The engine's checks and ours side by side: integrity_check in one thread, foreign keys and invariants
    in another (sqlite3 releases the GIL while a statement runs), row counts (and, for a manifest that recorded
    them, content checksums in worker processes) beside them."""
    from concurrent.futures import ThreadPoolExecutor

    from ops_project.backups.engines.sqlite import ROWS_METHOD, connect_ro, counts_of_file, stats_workers
    from ops_project.backups.engines.sqlite import rule_counts as sqlite_rule_counts

    rows_only = manifest.checksum_method == ROWS_METHOD

    def connect() -> sqlite3.Connection:
        return connect_ro(path, check_same_thread=False)

    def integrity() -> list[str]:
        con = connect()
        try:
            return [r[0] for r in con.execute("PRAGMA integrity_check(20)")]
        finally:
            con.close()

    def references() -> tuple[list, list[Check]]:
        con = connect()
        try:
            fk = con.execute("PRAGMA foreign_key_check").fetchall()
            return fk, _invariant_checks(sqlite_rule_counts(con), manifest,
                                         snapshot_bytes=plaintext_ok if rows_only else None)
        finally:
            con.close()

    label = f"restored {path.name}"
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(3))
        if rows_only:
            counted = pool.submit(counts_of_file, path, label=label, corrupt=CorruptDatabaseError)
            stats = counted.result
        else:
            stats = stack.enter_context(stats_workers(path, label=label, corrupt=CorruptDatabaseError))
        integrity_future, references_future = pool.submit(integrity), pool.submit(references)
        integrity_result = integrity_future.result()
        fk, invariants = references_future.result()
        ok = integrity_result == ["ok"] and not fk
        msg = "integrity_check ok, foreign_key_check clean" if ok else "; ".join(
            [*(i for i in integrity_result if i != "ok"), *(f"foreign key violation in {r[0]}" for r in fk[:5])])
        checks = [_check("engine_integrity", ok, msg, {"integrity_check": integrity_result[0],
                                                      "foreign_key_violations": len(fk)}), *invariants]
        compared = _compare_stats(manifest, stats())
    if rows_only:  # the content is proven by the plaintext's sha256: the restored file is the snapshot
        compared = [c for c in compared if c.name != "content_checksums"] + [_content_by_bytes(compared, plaintext_ok)]
    return checks + compared


def _content_by_bytes(compared: list[Check], plaintext_ok: bool) -> Check:
    """``content_checksums`` for a manifest that recorded row counts only: the restore is the snapshot byte for
    byte when the plaintext's sha256 matches (and then the row counts agree too)."""
    counts_ok = next(c for c in compared if c.name == "row_counts").passed
    if not plaintext_ok:
        text = "the restored bytes are not the snapshot's (plaintext_sha256 differs)"
    elif not counts_ok:
        text = "row counts differ"
    else:
        text = "the restored file is the snapshot byte for byte (plaintext_sha256 matches): every table's content " \
               "is as backed up"
    return _check("content_checksums", plaintext_ok and counts_ok, text, {"method": "plaintext_sha256"})


def _verify_postgres(dump: Path, manifest: Manifest, server_url: str, timings: Timings) -> list[Check]:
    what = f"the PostgreSQL server for {manifest.database}"
    with scratch_database(server_url, purpose="verify", what=what, encoding=manifest.database_encoding) as target:
        return _check_restored_postgres(dump, manifest, target, timings)


_SCRATCH_GAPS = [  # pg_restore errors that describe the scratch server or our tools, not the dump
    (re.compile(r'could not open extension control file "[^"]*/([^/"]+)\.control"'), "the extension {}"),
    (re.compile(r'extension "([^"]+)" is not available'), "the extension {}"),
    (re.compile(r'permission denied to create extension "([^"]+)"'), "permission to create the extension {}"),
    (re.compile(r'role "([^"]+)" does not exist'), "the role {}"),
    (re.compile(r'tablespace "([^"]+)" does not exist'), "the tablespace {}"),
    # A real archive version our pg_restore is too old for (1.x); "0.0" or garbage is a broken dump instead.
    (re.compile(r"unsupported version \((1\.\d+)\) in file header"), "a pg_restore that reads archive version {}"),
    (re.compile(r"(No space left on device|could not extend file|out of memory|"
                r"server closed the connection|terminating connection|connection to server .* failed|"
                r"could not connect to server|permission denied for database)"), "room or service ({})"),
]


def _scratch_server_lacks(error: str) -> str | None:
    for pattern, what in _SCRATCH_GAPS:
        match = pattern.search(error)
        if match:
            return what.format(match.group(1))
    return None


def _check_restored_postgres(dump: Path, manifest: Manifest, target: str, timings: Timings) -> list[Check]:
    import psycopg

    from ops_project.backups.engines.postgres import table_stats

    try:
        timings.restore = restore_postgres(dump, target)
    except OpsError as exc:
        missing = _scratch_server_lacks(str(exc))
        if missing:  # the scratch server, not the backup: inconclusive, and named
            raise ScratchServerError(f"could not restore {manifest.database} on the scratch PostgreSQL server: it "
                                     f"(or our pg_restore) lacks {missing}; not the backup's fault: {exc}") from None
        return [_check("engine_integrity", False, str(exc)),
                *(_check(n, False, "restore failed") for n in ("schema_fingerprint", "row_counts",
                                                              "content_checksums", "booking_invariants",
                                                              "live_data_invariants"))]
    restored = _check("engine_integrity", True, "pg_restore completed without errors")
    t = time.perf_counter()
    with psycopg.connect(target, autocommit=True) as con:
        restored.metadata["amcheck"] = _amcheck(con, restored)
        with con.transaction():  # the manifest's own method per table, under the settings it was computed with
            stats = table_stats(con, settings=manifest.checksum_settings, methods={
                name: t.checksum.split(":", 1)[0] for name, t in manifest.tables.items() if ":" in t.checksum})
        checks = [restored, *_invariant_checks(stats.invariants or {}, manifest), *_compare_stats(manifest, stats)]
    timings.checks = time.perf_counter() - t
    return checks


def _amcheck(con: psycopg.Connection, check: Check) -> str:
    import psycopg

    """B-tree index checks where the amcheck extension can be had; a corrupt index fails the check."""
    try:
        with con.transaction():
            con.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    except psycopg.Error:
        return "unavailable"
    indexes = con.execute("SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                          "JOIN pg_am am ON am.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE am.amname = 'btree' AND n.nspname = 'public'").fetchall()
    for (index,) in indexes:
        try:
            con.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
        except psycopg.Error as exc:
            check.passed = False
            check.message = f"amcheck: index {index} is corrupt: {str(exc).strip()}"
            return "failed"
    return f"{len(indexes)} btree indexes checked"


TRANSIENT_RETRIES = 1  # a download error or a bit flipped in transit is re-read once before a backup is condemned


def _fetch(store: ObjectStore, manifest: Manifest, dest: Path, **kw) -> Fetched:
    """``fetch`` without hash checks, re-read once when the first read failed or did not match: a connection
    reset or a bit flipped in transit must not condemn a backup whose bytes at rest are fine."""
    for attempt in range(TRANSIENT_RETRIES + 1):
        try:
            fetched = fetch(store, manifest, dest, check=False, **kw)
        except (IntegrityError, StorageError) as exc:
            if attempt == TRANSIENT_RETRIES or isinstance(exc, ObjectMissingError):
                raise
            continue
        if fetched.stored_sha256 == manifest.sha256_stored or attempt == TRANSIENT_RETRIES:
            return fetched
    raise AssertionError("unreachable")


def _hash_checks(fetched: Fetched, manifest: Manifest) -> list[Check]:
    stored_ok = fetched.stored_sha256 == manifest.sha256_stored
    plain_ok = fetched.plaintext_sha256 == manifest.sha256_plaintext
    return [
        _check("stored_sha256", stored_ok, "matches" if stored_ok else
               f"{fetched.stored_sha256}, manifest {manifest.sha256_stored}",
               {"expected": manifest.sha256_stored, "actual": fetched.stored_sha256, "bytes": fetched.stored_size}),
        _check("plaintext_sha256", plain_ok, "matches" if plain_ok else
               f"{fetched.plaintext_sha256}, manifest {manifest.sha256_plaintext}",
               {"expected": manifest.sha256_plaintext, "actual": fetched.plaintext_sha256,
                "bytes": fetched.plaintext_size}),
    ]


def _stored_check_after(error: BaseException, store: ObjectStore, key: str, manifest: Manifest) -> Check:
    """When nothing could be restored: are the stored bytes at least the ones the backup wrote?"""
    if isinstance(error, WrongIdentityError):  # raised only once the bytes were read whole and matched
        return _check("stored_sha256", True, "matches (the identity is wrong, not the bytes)")
    try:
        digest, size = stored_sha256(store, key)
    except OpsError as exc:
        return _check("stored_sha256", False, str(exc))
    ok = digest == manifest.sha256_stored
    return _check("stored_sha256", ok, "matches" if ok else f"{digest} ({size} bytes), manifest "
                                                            f"{manifest.sha256_stored}")


def verify(store: ObjectStore, database: DatabaseConfig, manifest: Manifest, *, rto_minutes: int,
           identities: list | None = None, scratch_dir: str | Path | None = None, pg_server_url: str | None = None,
           progress: Progress | None = None) -> Report:
    """Restore ``manifest``'s backup from ``store`` into scratch and run every check.

    An error that stops the verification is kept on the report; its class says whose fault it is
    (``blame``): the backup's (a conclusive failure) or our environment's (inconclusive).
    """
    import psycopg  # here, not at module level: the code location loads without it

    key = backup_prefix(manifest.database, manifest.backup_id) + manifest.data_object
    url = store.describe(key)
    checks: list[Check] = []
    timings = Timings()
    error: BaseException | None = None
    with scratch_directory("verify", scratch_dir) as tmp:
        dest = Path(tmp) / ("restored.sqlite" if manifest.engine == "sqlite" else "restored.pgdump")
        try:
            fetched = _fetch(store, manifest, dest, identities=identities, progress=progress)
        except OpsError as exc:
            error = exc
            checks.append(_stored_check_after(exc, store, key, manifest))
        else:
            timings = fetched.timings
            checks += _hash_checks(fetched, manifest)
            t = time.perf_counter()
            try:
                if manifest.engine == "sqlite":
                    checks += _verify_sqlite(dest, manifest, fetched.plaintext_sha256 == manifest.sha256_plaintext)
                else:
                    if not pg_server_url:
                        raise OpsError(f"database {database.name}: no PostgreSQL server to restore into "
                                       f"(set the variable {database.url_env})")
                    checks += _verify_postgres(dest, manifest, pg_server_url, timings)
            except (OpsError, sqlite3.Error, psycopg.Error) as exc:
                error = exc
            if manifest.engine == "sqlite":
                timings.checks = time.perf_counter() - t
    done = {c.name for c in checks}
    if error is not None:
        reason = f"{url}: not restorable: {error}" if "plaintext_sha256" not in done else \
            f"{url}: the restored database could not be checked: {error}"
        checks += [_check(n, False, reason) for n in CHECKS if n not in done and n != "rto_within_objective"]
    rto = rto_minutes * 60.0
    if error is not None and blame(error) is Outcome.INCONCLUSIVE or "plaintext_sha256" not in done:
        checks.append(_check("rto_within_objective", False, "nothing was restored: no RTO was measured",
                             {"objective_seconds": rto}))
    else:
        checks.append(_check("rto_within_objective", timings.total <= rto, f"{timings.total:.1f}s of {rto:.0f}s",
                             {"seconds": round(timings.total, 3), "objective_seconds": rto}))
    order = list(CHECKS)
    checks.sort(key=lambda c: order.index(c.name))
    return Report(manifest.database, manifest.backup_id, manifest.partition_key, store.region, url, checks,
                  timings, rto, datetime.now(UTC).isoformat(), error=error)


def record(store: ObjectStore, report: Report) -> bool:
    """Keep the verdict next to the backup; an inconclusive run (our failure) leaves the last verdict alone."""
    if not report.conclusive:
        return False
    store.put_bytes(backup_prefix(report.database, report.backup_id) + VERIFICATION, report.record())
    return True
