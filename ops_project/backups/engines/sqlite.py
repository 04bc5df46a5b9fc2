"""SQLite snapshots through the online backup API.

The backup API copies every page inside one read transaction, so writers keep writing (WAL) or
wait briefly (rollback journal) and the copy is a single point in time. The copy goes to a
scratch file; its row counts are read from that frozen copy on a thread while the compressor
streams it, so nothing touches the live database again. A backup records no per-table content
checksum (``ROWS_METHOD``): its restore is the snapshot byte for byte, which the plaintext's
sha256 proves. Restore verification of manifests written before that (``CHECKSUM_METHOD``)
still computes the checksums, in worker processes or, for a small file, on a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from ops_project.backups.blame import blame
from ops_project.backups.engines import Snapshot, SnapshotStats
from ops_project.backups.invariants import count_violations
from ops_project.backups.manifest import TableStats
from ops_project.common.checks import Outcome
from ops_project.common.errors import BackupError, OpsError

CHECKSUM_METHOD = "sqlite: blake2b-128 over marshal-v2 rows in key (rowid/primary key) order"
# What a backup records since issue 14: row counts, no per-table checksum. A restored SQLite file is the snapshot
# byte for byte (plaintext_sha256), which proves every table's content; per-table checksums of the same bytes
# proved nothing more and were most of a backup's time. Manifests with CHECKSUM_METHOD are still verified by it.
ROWS_METHOD = "sqlite: row counts; content proven by plaintext_sha256 (the restore is the snapshot, byte for byte)"


def uri(path: str | Path, **params: str) -> str:
    """A ``file:`` URI for SQLite with the path percent-encoded: a ``?`` or ``#`` in a directory name must
    never cut the path short (SQLite would open, or create, another file)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return Path(path).expanduser().resolve().as_uri() + (f"?{query}" if query else "")


def connect_ro(path: str | Path, **kw) -> sqlite3.Connection:
    """A read-only connection to an existing SQLite file (never creates one)."""
    return sqlite3.connect(uri(path, mode="ro"), uri=True, **kw)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_fingerprint(con: sqlite3.Connection) -> str:
    schema = con.execute(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
        "WHERE substr(name, 1, 7) <> 'sqlite_' ORDER BY type, name").fetchall()
    return hashlib.sha256(repr(schema).encode()).hexdigest()


def user_tables(con: sqlite3.Connection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                      "AND substr(name, 1, 7) <> 'sqlite_' ORDER BY name")]


def tables_and_columns(con: sqlite3.Connection) -> tuple[set[str], set[tuple[str, str]]]:
    """User tables and their (table, column) pairs: what the application queries and invariants read."""
    tables = set(user_tables(con))
    columns = {(t, r[1]) for t in tables for r in con.execute(f"PRAGMA table_info({_quote(t)})")}
    return tables, columns


def rule_counts(con: sqlite3.Connection) -> dict[str, int]:
    """The booking rules' violation counts in this database."""
    names, cols = tables_and_columns(con)
    return count_violations(lambda q: con.execute(q).fetchone()[0], names, cols, errors=(sqlite3.Error,))


def table_digest(con: sqlite3.Connection, name: str) -> TableStats:
    """Row count and a content checksum that depends on the rows, not on where they are stored.

    Rows are read in key order (rowid, or the primary key of a WITHOUT ROWID table), which is the
    b-tree's own order, so no sort is needed; each row is encoded with ``marshal`` format 2 (no
    back-references, so equal rows always encode alike) into one BLAKE2b digest. A restore, a
    VACUUM or a page reshuffle leaves it unchanged; any changed, added or removed row changes it.
    """
    digest, count, dumps = hashlib.blake2b(digest_size=16), 0, marshal.dumps
    text_factory, con.text_factory = con.text_factory, bytes  # hash the stored UTF-8; decoding costs 10 %
    try:
        try:
            cur = con.execute(f"SELECT * FROM {_quote(name)} ORDER BY rowid")
        except sqlite3.OperationalError:  # WITHOUT ROWID: a plain scan is already in primary-key order
            cur = con.execute(f"SELECT * FROM {_quote(name)}")
        while rows := cur.fetchmany(2048):
            digest.update(dumps(rows, 2)[5:])  # a list's encoding is a 5-byte header + its rows' encodings
            count += len(rows)
    finally:
        con.text_factory = text_factory
    return TableStats(rows=count, checksum=digest.hexdigest())


def table_stats(con: sqlite3.Connection) -> SnapshotStats:
    """Schema fingerprint and, per table, row count and content checksum."""
    return SnapshotStats(schema_fingerprint(con), {name: table_digest(con, name) for name in user_tables(con)})


def _open_ro(path: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(uri(path, mode="ro", immutable="1"), uri=True)


def stats_of_file(path: str | Path) -> SnapshotStats:
    con = _open_ro(path)
    try:
        return table_stats(con)
    finally:
        con.close()


def _split_tables(con: sqlite3.Connection, workers: int) -> list[list[str]]:
    """Tables in ``workers`` groups of similar size (largest first, each to the lightest group)."""
    def weight(name: str) -> int:
        try:
            return con.execute(f"SELECT max(rowid) FROM {_quote(name)}").fetchone()[0] or 0
        except sqlite3.OperationalError:
            return con.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0]

    groups: list[tuple[int, list[str]]] = [(0, []) for _ in range(workers)]
    for name in sorted(user_tables(con), key=weight, reverse=True):
        load, members = min(groups, key=lambda g: g[0])
        groups.remove((load, members))
        groups.append((load + weight(name), [*members, name]))
    return [members for _, members in groups if members]


def _online_copy(source: Path, target: Path) -> None:
    try:
        src = connect_ro(source, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open SQLite database {source}: {exc}") from None
    try:
        dst = sqlite3.connect(target)
    except sqlite3.Error as exc:
        src.close()
        raise BackupError(f"cannot create the scratch copy {target}: {exc}") from None
    try:
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails early on a non-database
        src.backup(dst, pages=-1)  # one step: one read transaction, one point in time
    except sqlite3.Error as exc:
        raise BackupError(f"online backup of SQLite database {source} failed: {exc}") from None
    finally:
        dst.close()
        src.close()


@contextlib.contextmanager
def snapshot(path: str | Path, *, scratch_dir: str | Path | None = None) -> Iterator[Snapshot]:
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise BackupError(f"SQLite database {source} does not exist: check databases[].path in the configuration")
    from ops_project.backups.scratch import scratch_directory  # scratch imports the postgres engine

    with scratch_directory("snapshot", scratch_dir) as tmp:
        copy = Path(tmp) / "snapshot.sqlite"
        _online_copy(source, copy)
        # A WAL-mode copy has the WAL flag in its header; make it a self-contained rollback-mode
        # file so that `sqlite3 restored.db` works on the restored file alone.
        con = sqlite3.connect(copy)
        con.execute("PRAGMA journal_mode=DELETE")
        con.close()
        # Row counts on a thread while the caller compresses the copy (sqlite3 releases the GIL while a query
        # runs). The booking rules are counted by restore verification on the restored copy, which is this
        # snapshot byte for byte: counting them here as well cost more than the compression.
        with ThreadPoolExecutor(1) as pool:
            counts = pool.submit(counts_of_file, copy, label=f"the snapshot of {source}")
            with open(copy, "rb") as stream:
                yield Snapshot(stream=stream, stats=counts.result, source_size=lambda: copy.stat().st_size,
                               tool_versions={"sqlite": sqlite3.sqlite_version}, checksum_method=ROWS_METHOD)


def _unreadable(exc: sqlite3.DatabaseError, corrupt: type[OpsError], message: str) -> OpsError:
    """``corrupt`` when SQLite says the file itself is damaged (a verdict), else ``BackupError`` (our side)."""
    return (corrupt if blame(exc) is Outcome.FAILED else BackupError)(message)


def counts_of_file(path: Path, *, label: str, corrupt: type[OpsError] = BackupError) -> SnapshotStats:
    """Schema fingerprint and every table's row count (``count(*)``, in SQLite's C), no checksum."""
    try:
        con = _open_ro(path)
        try:
            return SnapshotStats(schema_fingerprint(con), {
                name: TableStats(rows=con.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0], checksum="")
                for name in user_tables(con)})
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise _unreadable(exc, corrupt, f"{label}: not a readable SQLite database ({exc})") from None


IN_PROCESS_MAX_BYTES = 16 << 20  # a file this small is checksummed in-process: a worker costs more than the work


@contextlib.contextmanager
def stats_workers(path: Path, *, label: str,
                  corrupt: type[OpsError] = BackupError) -> Iterator[Callable[[], SnapshotStats]]:
    """Start computing ``path``'s stats; yields a function that waits for them.

    Checksums are CPU-bound Python: for a large file, worker processes read the (frozen) file while the
    caller does something else (compresses it, runs PRAGMA integrity_check), so the work spreads over the
    cores instead of taking turns on the GIL. A small file (a D1 tenant of a few MB) is checksummed on a thread
    of this process: starting a worker took 60-70 ms for 3 ms of work, and a fleet backs up a thousand. A file
    SQLite finds corrupt raises ``corrupt`` (a restored copy: ``CorruptDatabaseError``); a worker that fails for
    another reason raises ``BackupError``.
    """
    in_process = path.stat().st_size <= IN_PROCESS_MAX_BYTES
    con = _open_ro(path)
    try:
        fingerprint = schema_fingerprint(con)
        # a worker per group of tables of similar size; on a thread, simply every table
        groups = [user_tables(con)] if in_process else _split_tables(con, max(1, min(2, os.cpu_count() or 1)))
    except sqlite3.DatabaseError as exc:
        raise _unreadable(exc, corrupt, f"{label}: not a readable SQLite database ({exc})") from None
    finally:
        con.close()
    if in_process:
        with ThreadPoolExecutor(1) as pool:
            digests = pool.submit(_digests, path, groups[0])

            def in_process() -> SnapshotStats:
                try:
                    tables = digests.result()
                except sqlite3.DatabaseError as exc:
                    raise _unreadable(exc, corrupt, f"computing row counts and checksums of {label} failed: "
                                                    f"sqlite3: {exc}") from None
                return SnapshotStats(fingerprint, dict(sorted(tables.items())))

            yield in_process
        return
    procs: list[subprocess.Popen] = []

    def stats() -> SnapshotStats:
        tables: dict[str, TableStats] = {}
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                last = err.decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                error = corrupt if proc.returncode == WORKER_CORRUPT else BackupError
                raise error(f"computing row counts and checksums of {label} failed: {last[0]}")
            tables.update({n: TableStats(**t) for n, t in json.loads(out).items()})
        return SnapshotStats(fingerprint, dict(sorted(tables.items())))

    try:
        for group in groups:
            procs.append(subprocess.Popen([sys.executable, "-m", __name__, str(path), *group],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        yield stats
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()


def _digests(path: Path, tables: list[str]) -> dict[str, TableStats]:
    con = _open_ro(path)
    try:
        return {name: table_digest(con, name) for name in tables}
    finally:
        con.close()


WORKER_CORRUPT = 3  # the worker's exit code when SQLite finds the file corrupt


def _worker(path: str, tables: list[str]) -> int:
    try:
        print(json.dumps({name: asdict(stats) for name, stats in _digests(Path(path), tables).items()}))
    except sqlite3.DatabaseError as exc:
        print(f"sqlite3: {exc}", file=sys.stderr)
        return WORKER_CORRUPT if blame(exc) is Outcome.FAILED else 1
    return 0


if __name__ == "__main__":  # the checksum worker: python -m ops_project.backups.engines.sqlite FILE TABLE...
    sys.exit(_worker(sys.argv[1], sys.argv[2:]))
