"""SQLite snapshots through the online backup API.

The backup API copies every page inside one read transaction, so writers keep writing (WAL) or
wait briefly (rollback journal) and the copy is a single point in time. The copy goes to a
scratch file next to nothing else; row counts and content checksums are read from that frozen
copy while the compressor streams it, so neither touches the live database again.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from ops_project.databases import MASK64, Snapshot, SnapshotStats
from ops_project.errors import BackupError
from ops_project.manifest import TableStats


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_stats(con: sqlite3.Connection) -> SnapshotStats:
    """Schema fingerprint and, per table, row count and an order-independent content checksum.

    The checksum is the sum mod 2^64 of a 64-bit BLAKE2b digest of each row's repr, so the order
    the rows come back in does not matter; any changed, added or removed row changes it.
    """
    schema = con.execute(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    fingerprint = hashlib.sha256(repr(schema).encode()).hexdigest()
    tables: dict[str, TableStats] = {}
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                               "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall():
        total = count = 0
        blake = hashlib.blake2b
        cur = con.execute(f"SELECT * FROM {_quote(name)}")
        while rows := cur.fetchmany(4096):
            for row in rows:
                total += int.from_bytes(blake(repr(row).encode(), digest_size=8).digest(), "little")
            count += len(rows)
        tables[name] = TableStats(rows=count, checksum=f"{total & MASK64:016x}")
    return SnapshotStats(fingerprint, tables)


def stats_of_file(path: str | Path) -> SnapshotStats:
    con = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro&immutable=1", uri=True)
    try:
        return table_stats(con)
    finally:
        con.close()


def _online_copy(source: Path, target: Path) -> None:
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open SQLite database {source}: {exc}") from None
    dst = sqlite3.connect(target)
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
    with tempfile.TemporaryDirectory(prefix="ops-snapshot-", dir=scratch_dir) as tmp:
        copy = Path(tmp) / "snapshot.sqlite"
        _online_copy(source, copy)
        # A WAL-mode copy has the WAL flag in its header; make it a self-contained rollback-mode
        # file so that `sqlite3 restored.db` works on the restored file alone.
        con = sqlite3.connect(copy)
        con.execute("PRAGMA journal_mode=DELETE")
        con.close()
        future: Future = Future()

        def compute() -> None:
            try:
                future.set_result(stats_of_file(copy))
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                future.set_exception(exc)

        worker = threading.Thread(target=compute, name="sqlite-stats", daemon=True)
        worker.start()
        with open(copy, "rb") as stream:
            yield Snapshot(
                stream=stream,
                stats=future.result,
                source_size=lambda: copy.stat().st_size,
                tool_versions={"sqlite": sqlite3.sqlite_version},
            )
        worker.join()
