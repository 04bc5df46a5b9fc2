"""What is measured live at each run, as one small JSON document: every resource's use against its ceiling.

No agent: read-only queries and listings with the clients the project already has. Each source is measured
on its own; one that cannot be (a server down, a region that cannot be listed) is named under ``missing``
with why, and the rest still comes out.

Resource ids: ``<db>/bytes`` (a database's size), ``<db>/connections``, ``<db>/xid_age``,
``<db>/seq:<schema>.<name>`` (an int4 sequence's share used), ``region:<name>/bytes``, ``redis/used_memory``,
``redis/keys``.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ops_project.common import fleet
from ops_project.common.scrub import scrub
from ops_project.config import OpsConfig

INT4_MAX = 2**31 - 1


@dataclass
class Sample:
    resource: str
    label: str
    kind: str  # database_bytes, connections, xid_age, sequence, region_bytes, redis_memory, redis_keys
    unit: str  # bytes, count, xids, share
    value: float
    limit: float | None = None
    limit_source: str | None = None  # where the limit comes from (configured, the volume, the server's setting)
    detail: dict = field(default_factory=dict)


def _why(exc: BaseException) -> str:
    return scrub(f"{type(exc).__name__}: {exc}".strip())[:400]


def sqlite_samples(name: str, path: Path, configured: int | None) -> list[Sample]:
    """The file (with its WAL) against the configured limit, else the volume it lives on; free pages; the
    biggest tables (``dbstat``, where SQLite has it). Opened read-only: nothing is written."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    wal = path.with_name(path.name + "-wal")
    size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        page_size, pages, free = (con.execute(f"PRAGMA {p}").fetchone()[0]
                                  for p in ("page_size", "page_count", "freelist_count"))
        try:
            tables = con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 10"
                                 ).fetchall()
        except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
            tables = []
    finally:
        con.close()
    if configured:
        limit, source = float(configured), f"capacity.limits.{name}.bytes"
    else:
        limit, source = float(shutil.disk_usage(path.parent).total), f"the volume holding {path.parent}"
    detail = {"page_size": page_size, "pages": pages, "free_pages": free, "free_bytes": free * page_size,
              "tables": {t: int(b) for t, b in tables}}
    return [Sample(f"{name}/bytes", f"{name} database file", "database_bytes", "bytes", float(size), limit, source,
                   detail)]


PG_SIZES = """
SELECT pg_database_size(current_database()),
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
       (SELECT max(age(datfrozenxid)) FROM pg_database),
       current_setting('autovacuum_freeze_max_age')::bigint
"""
PG_RELATIONS = """
SELECT n.nspname || '.' || c.relname, c.relkind, pg_total_relation_size(c.oid), pg_indexes_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 3 DESC LIMIT 10
"""
# int4 sequences, and bigint ones that feed an int4 column (a serial whose column was never widened)
PG_SEQUENCES = """
SELECT s.schemaname || '.' || s.sequencename, COALESCE(s.last_value, 0),
       CASE WHEN s.data_type = 'integer'::regtype OR a.atttypid = 'int4'::regtype THEN 2147483647
            WHEN s.data_type = 'smallint'::regtype OR a.atttypid = 'int2'::regtype THEN 32767 END
FROM pg_sequences s
JOIN pg_class c ON c.relname = s.sequencename AND c.relnamespace = s.schemaname::regnamespace
LEFT JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE s.data_type IN ('integer'::regtype, 'smallint'::regtype) OR a.atttypid IN ('int4'::regtype, 'int2'::regtype)
"""


def postgres_samples(name: str, url: str, configured: int | None) -> list[Sample]:
    import psycopg

    with psycopg.connect(url, connect_timeout=10, autocommit=True) as con:
        con.execute("SET statement_timeout = '30s'")
        size, max_conn, reserved, used, xid_age, freeze_max = con.execute(PG_SIZES).fetchone()
        relations = con.execute(PG_RELATIONS).fetchall()
        sequences = con.execute(PG_SEQUENCES).fetchall()
    out = [Sample(f"{name}/bytes", f"{name} database size", "database_bytes", "bytes", float(size),
                  float(configured) if configured else None,
                  f"capacity.limits.{name}.bytes" if configured else None,
                  {"relations": {rel: {"total_bytes": int(total), "index_bytes": int(idx)}
                                 for rel, _kind, total, idx in relations}}),
           Sample(f"{name}/connections", f"{name} client connections", "connections", "count", float(used),
                  float(max_conn - reserved), "max_connections − superuser_reserved_connections",
                  {"max_connections": max_conn, "superuser_reserved_connections": reserved}),
           Sample(f"{name}/xid_age", f"{name} oldest transaction ID age", "xid_age", "xids", float(xid_age or 0),
                  float(freeze_max), "autovacuum_freeze_max_age")]
    seen = set()
    for seq, last, cap in sorted(sequences, key=lambda r: -(r[1] / r[2]) if r[2] else 0):
        if seq in seen or not cap or len(seen) >= 20:
            continue
        seen.add(seq)
        out.append(Sample(f"{name}/seq:{seq}", f"{name} sequence {seq}", "sequence", "share",
                          round(last / cap, 6), 1.0, f"the int{4 if cap == INT4_MAX else 2} column it feeds",
                          {"last_value": int(last), "max": int(cap)}))
    return out


def region_samples(name: str, store, quota: int | None, now: datetime) -> list[Sample]:
    """Bytes and objects stored (a full listing), and the objects written in the last 30 days (each at least
    one PUT: what per-request prices are charged on)."""
    total = count = recent = 0
    since = (now - timedelta(days=30)).timestamp()
    for info in store.list(""):
        total += info.size
        count += 1
        recent += info.modified >= since
    return [Sample(f"region:{name}/bytes", f"region {name} stored", "region_bytes", "bytes", float(total),
                   float(quota) if quota else None, f"capacity.regions.{name}.quota_bytes" if quota else None,
                   {"objects": count, "objects_written_30d": recent})]


def redis_samples(client) -> list[Sample]:
    info = client.info()
    maxmemory = int(info.get("maxmemory") or 0)
    keys = sum(v.get("keys", 0) for k, v in info.items() if k.startswith("db") and isinstance(v, dict))
    detail = {"evicted_keys": int(info.get("evicted_keys", 0)), "expired_keys": int(info.get("expired_keys", 0)),
              "maxmemory_policy": info.get("maxmemory_policy"),
              "used_memory_peak": int(info.get("used_memory_peak", 0))}
    return [Sample("redis/used_memory", "Redis used memory", "redis_memory", "bytes", float(info["used_memory"]),
                   float(maxmemory) if maxmemory else None, "maxmemory" if maxmemory else None, detail),
            Sample("redis/keys", "Redis keys", "redis_keys", "count", float(keys), None, None, {})]


def measure(cfg: OpsConfig, *, store_for: Callable[[str], object], url_for: Callable[[object], str | None],
            redis_for: Callable[[], object | None] | None, now: datetime | None = None) -> dict:
    """One measurement of everything configured: ``{"taken_at", "samples": [...], "missing": [...]}``."""
    now = now or datetime.now(UTC)
    samples: list[Sample] = []
    missing: list[dict] = []

    def attempt(what: str, fn):
        try:
            samples.extend(fn())
        except Exception as exc:  # noqa: BLE001 - one source down must not stop the others; it is named
            missing.append({"what": what, "why": _why(exc)})

    for db in fleet.of(cfg).databases:  # the declared databases and the tenants found now
        limit = cfg.capacity.limits.get(db.name)
        configured = int(limit.bytes) if limit and limit.bytes else None

        def database(db=db, configured=configured) -> list[Sample]:
            url = url_for(db)  # a configured demo database is generated on first use
            if db.engine == "sqlite":
                return sqlite_samples(db.name, Path(db.path), configured)
            return postgres_samples(db.name, url, configured)

        attempt(f"database {db.name}", database)
    for region in cfg.regions:
        price = cfg.capacity.regions.get(region.name)
        quota = int(price.quota_bytes) if price and price.quota_bytes else None
        attempt(f"region {region.name}", lambda r=region, q=quota: region_samples(r.name, store_for(r.name), q, now))
    if redis_for is not None:
        def redis_part():
            client = redis_for()
            if client is None:
                raise LookupError(f"no Redis URL: {cfg.cache.redis_url_env} (cache.redis_url_env) is not set")
            return redis_samples(client)

        attempt("redis", redis_part)
    return {"taken_at": now.isoformat(), "samples": [asdict(s) for s in samples], "missing": missing}
