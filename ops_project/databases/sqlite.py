"""SQLite snapshots through the online backup API.

The backup API copies every page inside one read transaction, so writers keep writing (WAL) or
wait briefly (rollback journal) and the copy is a single point in time. The copy goes to a
scratch file; row counts and content checksums are read from that frozen copy (in a second
process) while the compressor streams it, so neither touches the live database again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import marshal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from ops_project.databases import MASK64, Snapshot, SnapshotStats
from ops_project.errors import BackupError
from ops_project.manifest import TableStats


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_stats(con: sqlite3.Connection) -> SnapshotStats:
    """Schema fingerprint and, per table, row count and an order-independent content checksum.

    The checksum is the sum mod 2^64 of a 64-bit BLAKE2b digest of each row's ``marshal``
    encoding (format version 2: no back-references, so equal rows always encode alike), so the
    order the rows come back in does not matter; any changed, added or removed row changes it.
    """
    schema = con.execute(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    fingerprint = hashlib.sha256(repr(schema).encode()).hexdigest()
    tables: dict[str, TableStats] = {}
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                               "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall():
        total = count = 0
        blake, dumps, from_bytes = hashlib.blake2b, marshal.dumps, int.from_bytes
        for row in con.execute(f"SELECT * FROM {_quote(name)}"):
            total += from_bytes(blake(dumps(row, 2), digest_size=8).digest(), "little")
            count += 1
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
        # Checksums are CPU-bound Python; a separate process reads the frozen copy while this one
        # compresses it, so the two use both cores instead of taking turns on the GIL.
        proc = subprocess.Popen([sys.executable, "-m", "ops_project.databases.sqlite", str(copy)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def stats() -> SnapshotStats:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise BackupError(f"computing row counts and checksums of the snapshot of {source} failed: "
                                  f"{err.decode(errors='replace').strip().splitlines()[-1:]}")
            return _stats_from_json(out)

        try:
            with open(copy, "rb") as stream:
                yield Snapshot(stream=stream, stats=stats, source_size=lambda: copy.stat().st_size,
                               tool_versions={"sqlite": sqlite3.sqlite_version})
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _stats_to_json(stats: SnapshotStats) -> str:
    return json.dumps({"schema_fingerprint": stats.schema_fingerprint,
                       "tables": {name: asdict(t) for name, t in stats.tables.items()}})


def _stats_from_json(raw: bytes) -> SnapshotStats:
    doc = json.loads(raw)
    return SnapshotStats(doc["schema_fingerprint"], {n: TableStats(**t) for n, t in doc["tables"].items()})


if __name__ == "__main__":  # the stats worker: python -m ops_project.databases.sqlite FILE
    print(_stats_to_json(stats_of_file(sys.argv[1])))
