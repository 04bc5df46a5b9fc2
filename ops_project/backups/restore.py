"""Fetch a backup from a region and turn it back into a database, checking hashes on the way.

stored bytes → sha256 (stored) → [age -d] → zstd -d → sha256 (plaintext) → scratch file, in one
streamed pass with bounded memory. Then, for PostgreSQL, ``pg_restore`` into a database. The
same code serves restore verification, DR drills and ``python -m ops_project backups restore``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import psycopg.sql
import pyrage
import zstandard

from ops_project.backups.blame import blame
from ops_project.backups.catalog import BackupEntry, list_backups
from ops_project.backups.engines.postgres import parse_url, redact_url
from ops_project.backups.engines.sqlite import connect_ro
from ops_project.backups.layout import MANIFEST, backup_prefix
from ops_project.backups.manifest import Manifest
from ops_project.backups.scratch import create_database, scratch_directory
from ops_project.common.checks import Outcome
from ops_project.common.errors import CorruptDatabaseError, EncryptionError, IntegrityError, OpsError
from ops_project.common.streams import HashingReader, HashingWriter, Progress, decompress_frame, drain
from ops_project.storage import ObjectStore


class RestoreError(OpsError):
    """A backup could not be restored; the message names the object and the cause."""


class NoBackupError(RestoreError):
    pass


class WrongIdentityError(EncryptionError):
    """The stored bytes match their sha256 and still do not decrypt: the identity is not the backup's."""


@dataclass
class Timings:
    download: float = 0.0
    decode: float = 0.0  # decrypt + decompress + write
    restore: float = 0.0
    checks: float = 0.0

    @property
    def total(self) -> float:
        return self.download + self.decode + self.restore + self.checks


@dataclass
class Fetched:
    manifest: Manifest
    region: str
    object_url: str
    plaintext: Path
    stored_sha256: str
    plaintext_sha256: str
    stored_size: int
    plaintext_size: int
    timings: Timings = field(default_factory=Timings)


def find_backup(store: ObjectStore, database: str, backup_id: str | None = "latest") -> BackupEntry:
    """A complete backup by id, or the newest one (``latest`` / None)."""
    entries = list_backups(store, database)
    complete = [e for e in entries if e.complete]
    if backup_id not in (None, "latest"):
        for entry in entries:
            if entry.backup_id == backup_id:
                if entry.complete:
                    return entry
                if entry.problem:  # a manifest that is there and cannot be trusted: the backup is bad
                    raise IntegrityError(f"{entry.problem}; backup {backup_id} cannot be restored")
                raise NoBackupError(
                    f"region {store.region}: {store.describe(backup_prefix(database, backup_id) + MANIFEST)} is "
                    f"missing: backup {backup_id} is incomplete and cannot be restored; choose another backup")
        newest = f" (newest is {complete[-1].backup_id}; see `backups list`)" if complete else ""
        raise NoBackupError(f"region {store.region}: no backup {backup_id} of {database}{newest}")
    trusted = [e for e in complete if not e.failed_verification]
    if not trusted:
        raise NoBackupError(f"region {store.region}: no complete backup of {database} that has not failed "
                            f"restore verification" if complete else
                            f"region {store.region}: no complete backup of {database}")
    return trusted[-1]  # the newest one not known to be bad (pass --backup-id to take another)


def fetch(store: ObjectStore, manifest: Manifest, dest: Path, *, identities: list | None = None,
          progress: Progress | None = None, check: bool = True) -> Fetched:
    """Download, decrypt, decompress into ``dest``; raise IntegrityError naming the object on any mismatch.

    With ``check`` (the default) the stored and plaintext sha256 are compared with the manifest and a
    mismatch raises; without it the caller compares (restore verification reports each as a check).
    On failure ``dest`` is removed.
    """
    key = backup_prefix(manifest.database, manifest.backup_id) + manifest.data_object
    url = store.describe(key)
    if manifest.encryption and not identities:
        raise EncryptionError(f"{url} is age-encrypted: give the identity file (OPS_AGE_IDENTITY_FILE or --identity)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        with store.reader(key) as raw, open(dest, "wb") as out:
            reader = HashingReader(raw, progress=progress, total=manifest.stored_size_bytes)
            sink = HashingWriter(out)
            try:
                if manifest.encryption:
                    _decrypt_then_decompress(reader, sink, identities, url, manifest.source_size_bytes)
                else:
                    decompress_frame(reader, sink, what=url, expected_size=manifest.source_size_bytes)
            except (zstandard.ZstdError, IntegrityError, _DecryptFailed) as exc:
                raise _undecodable(exc, reader, manifest, url) from None
            drain(reader)  # anything after the frame still counts towards the sha256
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise RestoreError(f"restoring {url} into {dest} failed: {exc.strerror or exc} "
                           f"(free space at {dest.parent}: {_free(dest.parent)})") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    total = time.perf_counter() - started
    fetched = Fetched(manifest, store.region, url, dest, reader.hexdigest, sink.hexdigest,
                      reader.size, sink.size, Timings(download=reader.seconds, decode=total - reader.seconds))
    if check:
        check_hashes(fetched)
    return fetched


def check_hashes(fetched: Fetched) -> None:
    manifest, url, dest = fetched.manifest, fetched.object_url, fetched.plaintext
    if fetched.stored_sha256 != manifest.sha256_stored:
        dest.unlink(missing_ok=True)
        raise IntegrityError(f"{url}: sha256 of the stored bytes is {fetched.stored_sha256} ({fetched.stored_size} "
                             f"bytes), the manifest says {manifest.sha256_stored} ({manifest.stored_size_bytes} "
                             f"bytes): the object is corrupt; use another backup or region")
    if fetched.plaintext_sha256 != manifest.sha256_plaintext:
        dest.unlink(missing_ok=True)
        raise IntegrityError(f"{url}: sha256 of the restored plaintext is {fetched.plaintext_sha256}, the manifest "
                             f"says {manifest.sha256_plaintext}: the manifest or the object was altered")


def _free(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path).free / 2**20:.1f} MiB"
    except OSError:
        return "unknown"


class _DecryptFailed(Exception):
    """age refused the bytes: a wrong identity, or corrupt bytes; ``_undecodable`` tells which."""


def _undecodable(exc: BaseException, reader: HashingReader, manifest: Manifest, url: str) -> OpsError:
    """Why the stored bytes did not decode. The rest of the object is read so that its sha256 is complete:
    bytes that differ from the manifest are corrupt (the backup's fault); bytes that match it and do not
    decrypt mean the identity is wrong (ours); bytes that match it and do not decompress were written broken."""
    drain(reader)
    if reader.hexdigest != manifest.sha256_stored:
        return IntegrityError(f"{url}: sha256 of the stored bytes is {reader.hexdigest} ({reader.size} bytes), the "
                              f"manifest says {manifest.sha256_stored} ({manifest.stored_size_bytes} bytes): the "
                              f"object is corrupt or truncated ({exc}); use another backup or region")
    if isinstance(exc, _DecryptFailed):
        return WrongIdentityError(f"{url}: age decryption failed ({exc}): wrong identity. The stored bytes match "
                               f"their sha256, so the key is at fault, not the backup: give the identity whose "
                               f"public key encrypted it")
    return IntegrityError(f"{url}: the stored bytes match their sha256 but do not decompress ({exc}): the backup "
                          f"was written broken; use another backup")


def _decrypt_then_decompress(reader, sink, identities, url: str, expected_size: int) -> None:
    """age decryption in a thread feeding the decompressor through a pipe (pyrage reads, it does not stream out)."""
    r_fd, w_fd = os.pipe()
    errors: list[BaseException] = []

    def decrypt() -> None:
        try:
            with open(w_fd, "wb") as w:
                pyrage.decrypt_io(reader, w, identities)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=decrypt, name="age-decrypt", daemon=True)
    thread.start()
    try:
        with open(r_fd, "rb") as r:
            decompress_frame(r, sink, what=url, expected_size=expected_size)
    except (zstandard.ZstdError, IntegrityError):
        thread.join()
        # The decryption failed first: that is the real cause (a broken pipe only says we stopped reading).
        if errors and not isinstance(errors[0], BrokenPipeError):
            raise _decrypt_error(errors[0], url) from None
        raise
    thread.join()
    if errors:
        raise _decrypt_error(errors[0], url) from None


def _decrypt_error(exc: BaseException, url: str) -> Exception:
    if isinstance(exc, OpsError):
        return exc
    return _DecryptFailed(str(exc))


def restore_postgres(dump: Path, target_url: str, *, keep_privileges: bool = False) -> float:
    """pg_restore a custom-format dump into an existing empty database, in one transaction (all or
    nothing); seconds taken. ``keep_privileges`` keeps owners and grants (the roles must exist there)."""
    info = parse_url(target_url, what="the database to restore into")
    env = dict(os.environ)
    if info.get("password"):
        env["PGPASSWORD"] = str(info.pop("password"))
    t = time.perf_counter()
    try:
        proc = subprocess.run(["pg_restore", "--exit-on-error", "--single-transaction", "--no-password",
                               *([] if keep_privileges else ["--no-owner", "--no-privileges"]),
                               f"--dbname={psycopg.conninfo.make_conninfo(**info)}", str(dump)],
                              capture_output=True, text=True, env=env)
    except OSError as exc:
        raise RestoreError(f"cannot run pg_restore ({exc.strerror or exc}): install the PostgreSQL client "
                           f"matching the server's version") from None
    if proc.returncode != 0:
        raise RestoreError(f"pg_restore of {dump.name} into {info.get('dbname')} failed: "
                           f"{proc.stderr.strip()[-1500:]}")
    return time.perf_counter() - t


def check_sqlite_integrity(path: Path, *, what: str) -> None:
    """SQLite's own ``integrity_check`` on a restored copy; CorruptDatabaseError (nothing replaced) if unsound."""
    try:
        con = connect_ro(path)
        try:
            problems = [r[0] for r in con.execute("PRAGMA integrity_check(20)")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if blame(exc) is Outcome.INCONCLUSIVE:
            raise RestoreError(f"{what}: could not be checked ({exc}); nothing was replaced") from None
        problems = [str(exc)]
    if problems != ["ok"]:
        raise CorruptDatabaseError(f"{what}: SQLite integrity_check failed ({'; '.join(problems[:5])}): this "
                                   f"backup is not a sound database and nothing was replaced; use another backup")


def restore_to_file(store: ObjectStore, manifest: Manifest, target: str | Path, *, identities: list | None = None,
                    force: bool = False, progress: Progress | None = None) -> tuple[Fetched, Path]:
    """Restore a SQLite backup to ``target``: written beside it, hashes and integrity checked, then moved
    into place in one step.

    The path never holds a half-restored database. Only a regular file is ever replaced, and only with
    ``force``; it keeps its owner and mode. Without ``force`` the restore lands only if the path is still
    free at that moment, so two restores into one new path cannot both succeed.
    """
    raw = Path(target).expanduser()
    dest = raw.parent.resolve() / raw.name  # a link at the target itself is not followed
    old = _existing_regular_file(dest, force)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.restoring-", dir=dest.parent)
    except OSError as exc:
        raise RestoreError(f"cannot write beside {dest}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fetched = fetch(store, manifest, tmp, identities=identities, progress=progress)
        check_sqlite_integrity(tmp, what=f"{fetched.object_url} (restored beside {dest})")
        if old is not None:
            os.chmod(tmp, stat.S_IMODE(old.st_mode))
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.chown(tmp, old.st_uid, old.st_gid)
        for sidecar in ("-wal", "-shm", "-journal"):  # stale sidecars would be replayed onto the restore
            Path(f"{dest}{sidecar}").unlink(missing_ok=True)
        if force:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)  # fails if anything appeared at the path meanwhile: never overwrite
            except FileExistsError:
                raise OpsError(f"{dest} appeared while restoring (another restore?): nothing was replaced; "
                               f"choose another path, or --force to replace it") from None
    except OSError as exc:
        raise RestoreError(f"restoring into {dest} failed: {exc.strerror or exc}; nothing was replaced") from None
    finally:
        tmp.unlink(missing_ok=True)
    return fetched, dest


def _existing_regular_file(dest: Path, force: bool) -> os.stat_result | None:
    """The target's status if it is a regular file that may be replaced; None if the path is free."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise OpsError(f"{dest} exists and is not a regular file (a directory, link, device or socket): refusing "
                       f"to replace it; give the path of a database file")
    if not force:
        raise OpsError(f"{dest} already exists: choose another path, or --force to replace it")
    return st


def restore_to_database(store: ObjectStore, manifest: Manifest, target_url: str, *, identities: list | None = None,
                        keep_privileges: bool = True, scratch_dir: str | Path | None = None,
                        progress: Progress | None = None) -> tuple[Fetched, float]:
    """Restore a PostgreSQL backup into the database ``target_url`` names: created (from template0, in the
    source's encoding) when missing, or an existing empty one. A database that holds tables is refused,
    ``--force`` or not: restore into a new database and rename it. The restore is one transaction; a
    database this call created is dropped again when the restore fails. Returns the fetch and the seconds
    ``pg_restore`` took."""
    info = parse_url(target_url, what="--to")
    name = info.get("dbname")
    if not name:
        raise OpsError("--to for a PostgreSQL backup must be a URL naming the database to restore into")
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as con:
        exists = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            create_database(con, name, manifest.database_encoding)
    if exists:
        with psycopg.connect(target_url) as con:
            used = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
                               "('pg_catalog', 'information_schema')").fetchone()[0]
        if used:
            raise OpsError(f"database {redact_url(target_url)} already holds {used} tables: nothing was restored "
                           f"(not even with --force: a restore never merges into live tables); restore into a new "
                           f"database, check it, then swap the names with ALTER DATABASE ... RENAME")
    try:
        with scratch_directory("restore", scratch_dir) as work:
            fetched = fetch(store, manifest, work / "restore.pgdump", identities=identities, progress=progress)
            seconds = restore_postgres(fetched.plaintext, target_url, keep_privileges=keep_privileges)
    except BaseException:
        if not exists:  # leave nothing half-made behind: the database was ours
            with psycopg.connect(admin, autocommit=True) as con:
                con.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    psycopg.sql.Identifier(name)))
        raise
    return fetched, seconds
