"""PostgreSQL snapshots: ``pg_dump -Fc -Z0`` in an exported snapshot, piped through our zstd.

A REPEATABLE READ transaction exports its snapshot; pg_dump dumps exactly that snapshot while the
same transaction computes row counts and content checksums server-side, so the manifest and the
dump describe one point in time. ``-Z0`` leaves compression to our zstd, which measured 3.4×
faster than pg_dump's own gzip.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import psycopg
from psycopg import sql

from ops_project.backups.engines import MASK64, Snapshot, SnapshotStats
from ops_project.backups.invariants import count_violations
from ops_project.backups.manifest import TableStats
from ops_project.common.errors import BackupError, ScratchServerError
from ops_project.common.streams import CHUNK, CountingReader

CHECKSUM_METHOD = ("postgres: sum mod 2^64 of a 64-bit hash per row, any order; "
                   "hrx: hash_record_extended(row, 0), md5: first 64 bits of md5(row::text)")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def parse_url(url: str, *, what: str) -> dict:
    """conninfo as a dict; a malformed URL is an error that never repeats the URL (it may hold a password)."""
    try:
        return psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        raise BackupError(f"{what}: not a valid PostgreSQL URL (postgresql://user@host:port/dbname); "
                          f"check the environment variable that holds it") from None


def redact_url(url: str) -> str:
    """A connection URL without its password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(unparseable URL)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


# Row checksums over text (``md5:``) depend on how values print: pinned on every checksum connection, and
# recorded in the manifest, so that a scratch server with other defaults computes the same sums.
CHECKSUM_SETTINGS = {"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres",
                     "extra_float_digits": "3", "bytea_output": "hex"}


def table_stats(con: psycopg.Connection, *, settings: dict[str, str] | None = CHECKSUM_SETTINGS,
                methods: dict[str, str] | None = None) -> SnapshotStats:
    """Schema fingerprint, per-table row counts and checksums, and booking-rule counts, in the caller's
    transaction. ``settings`` are applied for this transaction only (None: the session's own, as manifests
    written before they were pinned expect). ``methods`` ({table: "hrx" | "md5"}) repeats a manifest's
    choice per table when verifying; without it the fastest method the server offers is used."""
    cur = con.cursor()
    for name, value in (settings or {}).items():
        cur.execute("SELECT set_config(%s, %s, true)", (name, value))
    cur.execute(
        "SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable, "
        "coalesce(c.column_default, '') FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE t.table_type = 'BASE TABLE' AND c.table_schema <> ALL(%s) "
        "AND c.table_schema NOT LIKE 'pg\\_temp%%' "
        "ORDER BY 1, 2, c.ordinal_position", (list(SYSTEM_SCHEMAS),))
    columns = cur.fetchall()
    cur.execute("SELECT schemaname, indexname, indexdef FROM pg_indexes WHERE schemaname <> ALL(%s) "
                "ORDER BY 1, 2", (list(SYSTEM_SCHEMAS),))
    indexes = cur.fetchall()
    fingerprint = hashlib.sha256(repr((columns, indexes)).encode()).hexdigest()
    tables: dict[str, TableStats] = {}
    fast = con.info.server_version >= 140000  # hash_record_extended arrived in PostgreSQL 14
    for schema, table in sorted({(c[0], c[1]) for c in columns}):
        name = f"{schema}.{table}"
        method = (methods or {}).get(name)
        if method == "hrx" and not fast:
            raise ScratchServerError(
                f"table {name} was checksummed with hash_record_extended, which this PostgreSQL server "
                f"({con.info.server_version // 10000}) lacks: verify on a server of version 14 or newer")
        tables[name] = _table_checksum(con, sql.Identifier(schema, table), fast if method is None else
                                       method == "hrx")
    encoding = con.execute("SHOW server_encoding").fetchone()[0]
    return SnapshotStats(fingerprint, tables, rule_counts(con), dict(settings) if settings else None, encoding)


def rule_counts(con: psycopg.Connection) -> dict[str, int]:
    """The booking rules' violation counts in the ``public`` schema, inside the caller's transaction."""
    names, cols = tables_and_columns(con)

    def query(sql_text: str) -> int:
        with con.transaction():  # a savepoint: a failing rule must not end a snapshot's transaction
            return con.execute(sql_text).fetchone()[0]

    return count_violations(query, names, cols, errors=(psycopg.Error,))


def tables_and_columns(con: psycopg.Connection) -> tuple[set[str], set[tuple[str, str]]]:
    """Tables of the ``public`` schema and their (table, column) pairs: what the application queries read."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = 'public'")}
    columns = {(r[0], r[1]) for r in con.execute("SELECT table_name, column_name FROM information_schema.columns "
                                                 "WHERE table_schema = 'public'")}
    return tables, columns


def _table_checksum(con: psycopg.Connection, ident: sql.Identifier, fast: bool) -> TableStats:
    """Row count and an order-independent checksum: the sum mod 2^64 of a 64-bit hash per row.

    ``hrx:`` uses ``hash_record_extended`` (each column hashed by its type's own hash function,
    computed in parallel workers, ~5× faster); a table with a column type that has no hash
    function (json, geometric types) falls back to ``md5:`` over the row's text form.
    """
    cur = con.cursor()
    if fast:
        try:
            with con.transaction():  # a savepoint: a failure must not end the snapshot's transaction
                cur.execute(sql.SQL("SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0)::text "
                                    "FROM {} AS t").format(ident))
                rows, total = cur.fetchone()
                return TableStats(rows=rows, checksum=f"hrx:{int(total) & MASK64:016x}")
        except psycopg.errors.UndefinedFunction:
            pass
    cur.execute(sql.SQL("SELECT count(*), coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint), 0)::text "
                        "FROM {} AS t").format(ident))
    rows, total = cur.fetchone()
    return TableStats(rows=rows, checksum=f"md5:{int(total) & MASK64:016x}")


def pg_dump_version() -> str:
    exe = shutil.which("pg_dump")
    if not exe:
        raise BackupError("pg_dump is not on PATH: install the PostgreSQL client matching the server's version")
    return subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def _start_pg_dump(url: str, snapshot_id: str) -> subprocess.Popen:
    """``pg_dump -Fc -Z0`` of exactly ``snapshot_id``; the password travels in the environment, not argv."""
    info = parse_url(url, what="the database to dump")
    env = dict(os.environ)
    if info.get("password"):
        env["PGPASSWORD"] = str(info.pop("password"))
    return subprocess.Popen(
        ["pg_dump", "--format=custom", "--compress=0", f"--snapshot={snapshot_id}", "--no-password",
         f"--dbname={psycopg.conninfo.make_conninfo(**info)}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=CHUNK, env=env)


def _in_thread(fn: Callable[[], object]) -> tuple[Future, threading.Thread]:
    """Run ``fn`` in a daemon thread; its result (or exception) arrives through the future."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return future, thread


@contextlib.contextmanager
def snapshot(url: str, *, name: str) -> Iterator[Snapshot]:
    """One REPEATABLE READ snapshot: pg_dump streams it while the same transaction computes the stats."""
    version = pg_dump_version()
    parse_url(url, what=f"database {name}")
    try:
        con = psycopg.connect(url, autocommit=False, connect_timeout=10)
    except psycopg.Error as exc:
        raise BackupError(f"database {name}: cannot connect to PostgreSQL at {redact_url(url)}: "
                          f"{str(exc).strip().splitlines()[0]}") from None
    with con:
        con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snap_id = con.execute("SELECT pg_export_snapshot()").fetchone()[0]
        server = con.execute("SHOW server_version").fetchone()[0]
        proc = _start_pg_dump(url, snap_id)
        stderr, stderr_thread = _in_thread(proc.stderr.read)
        stats, stats_thread = _in_thread(lambda: table_stats(con))
        dump = CountingReader(proc.stdout)
        ok = False
        try:
            yield Snapshot(stream=dump, stats=stats.result, source_size=lambda: dump.size,
                           tool_versions={"pg_dump": version, "postgres_server": server},
                           checksum_method=CHECKSUM_METHOD)
            ok = True
        finally:
            if not ok:
                if proc.poll() is None:
                    proc.kill()
                con.cancel()  # stop the checksum queries too: no point holding the snapshot open
            proc.stdout.close()
            code = proc.wait()
            for t in (stderr_thread, stats_thread):
                t.join()
            proc.stderr.close()
            try:
                con.rollback()
            except psycopg.Error:
                pass
        if code != 0:
            err = stderr.result().decode(errors="replace").strip().replace(url, redact_url(url))
            raise BackupError(f"database {name}: pg_dump exited with {code}: {err}")
