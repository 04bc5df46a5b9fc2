"""``pg_stat_statements``: snapshots of a live server's cumulative counters, and what happened between two.

The view counts since each entry was (re)created, so one snapshot says little; the difference between two
says what ran in between. Entries are keyed by ``(userid, dbid, queryid, toplevel)``. Between two snapshots:

- an entry in both, unchanged ``stats_since`` (PostgreSQL 17+) and no counter lower than before: the delta;
- an entry whose ``stats_since`` moved, or (before 17, where the view has no ``stats_since``) whose calls or
  time went down: it was evicted and re-added (or reset alone), so its absolute values are what ran since;
- an entry only in the newer snapshot: new, its absolute values;
- an entry only in the older one: evicted; what it ran since the older snapshot is lost (see ``dealloc``);
- ``stats_reset`` of ``pg_stat_statements_info`` moved: everything was reset in between, and the interval is
  discarded (a "delta" against counters that restarted from zero would be wrong either way);
- ``dealloc`` grew: the server threw entries away to make room, so the interval's figures miss some
  statements: reported as lost coverage, with the advice to raise ``pg_stat_statements.max``.

No delta is ever negative. Times are milliseconds, as the view gives them. The sum of squared durations is
kept (from ``mean_exec_time`` and ``stddev_exec_time``, a population deviation) so that an interval's mean
and spread can be told apart from another's without per-call samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ops_project.common.errors import OpsError

SNAPSHOT_VERSION = 1


class StatStatementsError(OpsError):
    """The server cannot give pg_stat_statements (extension missing, not preloaded, no permission)."""


def _iso(value) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def take_snapshot(url: str, *, taken_at: datetime | None = None) -> dict:
    """The counters of the database ``url`` connects to, as a JSON-able snapshot."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as con:
            has = {r[0] for r in con.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass('pg_stat_statements') "
                "AND attnum > 0 AND NOT attisdropped")}
            if not has:
                raise StatStatementsError(
                    f"database {con.info.dbname} on {con.info.host}:{con.info.port} has no pg_stat_statements "
                    f"view: run CREATE EXTENSION pg_stat_statements there (and preload it: "
                    f"shared_preload_libraries = 'pg_stat_statements')")
            since = "stats_since" if "stats_since" in has else "NULL::timestamptz"
            info = con.execute("SELECT dealloc, stats_reset FROM pg_stat_statements_info").fetchone()
            limit = con.execute("SELECT current_setting('pg_stat_statements.max')::int").fetchone()[0]
            datname, version = con.execute("SELECT current_database(), current_setting('server_version_num')"
                                           "::int").fetchone()
            rows = con.execute(
                f"SELECT userid::bigint, dbid::bigint, queryid, toplevel, query, calls, total_exec_time, rows, "
                f"mean_exec_time, stddev_exec_time, {since} FROM pg_stat_statements "
                f"WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())").fetchall()
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:  # the view exists, the library is not loaded
        raise StatStatementsError(f"pg_stat_statements is not loaded by the server: add it to "
                                  f"shared_preload_libraries and restart ({exc.diag.message_primary})") from None
    except psycopg.Error as exc:
        raise StatStatementsError(f"cannot read pg_stat_statements: {type(exc).__name__}: "
                                  f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    entries, hidden = [], 0
    for userid, dbid, queryid, toplevel, query, calls, total, nrows, mean, stddev, stats_since in rows:
        query = _without_literals(query)
        if queryid is None:  # another role's statement, hidden without pg_read_all_stats
            hidden += 1
            continue
        entries.append({"userid": userid, "dbid": dbid, "queryid": queryid, "toplevel": toplevel, "query": query,
                        "calls": calls, "total_ms": total, "rows": nrows,
                        "sum_sq": calls * (stddev * stddev + mean * mean), "stats_since": _iso(stats_since)})
    return {"version": SNAPSHOT_VERSION, "taken_at": (taken_at or datetime.now(UTC)).isoformat(),
            "database": datname, "server_version": version, "max": limit,
            "dealloc": info[0], "stats_reset": _iso(info[1]), "hidden": hidden, "entries": entries}


def _without_literals(query: str) -> str:
    """The view normalises the constants of plannable statements only: a utility statement keeps its literals
    (``ALTER ROLE … PASSWORD '…'``). Snapshots are stored, so every text is normalised before it is kept."""
    from pglast.parser import normalize

    from ops_project.queries.fingerprint import cheap_key

    try:
        return normalize(query)
    except Exception:  # noqa: BLE001 - pglast's ParseError and more for odd text: the cheap key has no literal
        return cheap_key(query)


def _key(e: dict) -> tuple:
    return e["userid"], e["dbid"], e["queryid"], e["toplevel"]


@dataclass
class Interval:
    """What ran between two snapshots, entry by entry (never negative), and how much of it may be missing."""

    since: str
    until: str
    discarded: str | None = None  # why the interval says nothing (a full reset in between)
    entries: list[dict] = field(default_factory=list)  # key fields, query, calls, total_ms, rows, sum_sq, how
    new: int = 0
    readded: int = 0
    evicted: int = 0
    dealloc: int = 0  # entries the server threw away in the interval
    max: int = 0
    hidden: int = 0

    @property
    def lost_coverage(self) -> str | None:
        if self.dealloc <= 0:
            return None
        return (f"the server deallocated {self.dealloc} pg_stat_statements entries between {self.since} and "
                f"{self.until}: statements evicted meanwhile are missing from these figures. Raise "
                f"pg_stat_statements.max (now {self.max}) on the server (needs a restart)")

    def to_dict(self) -> dict:
        return {"since": self.since, "until": self.until, "discarded": self.discarded, "new": self.new,
                "readded": self.readded, "evicted": self.evicted, "dealloc": self.dealloc, "max": self.max,
                "hidden": self.hidden, "lost_coverage": self.lost_coverage}


def diff(older: dict, newer: dict) -> Interval:
    """What ran between ``older`` and ``newer`` (snapshots of the same database; see the module for the rules)."""
    out = Interval(older["taken_at"], newer["taken_at"], max=newer.get("max", 0), hidden=newer.get("hidden", 0))
    if older.get("stats_reset") != newer.get("stats_reset"):
        out.discarded = (f"pg_stat_statements was reset at {newer.get('stats_reset')} (pg_stat_statements_reset()), "
                         f"between the snapshots of {older['taken_at']} and {newer['taken_at']}: the interval's "
                         f"counters cannot be told apart, and it is left out")
        return out
    out.dealloc = max(0, (newer.get("dealloc") or 0) - (older.get("dealloc") or 0))
    before = {_key(e): e for e in older["entries"]}
    now_keys = set()
    for e in newer["entries"]:
        now_keys.add(_key(e))
        old = before.get(_key(e))
        if old is None:
            out.new += 1
            entry = dict(e, how="new")
        elif (e.get("stats_since") != old.get("stats_since") or e["calls"] < old["calls"]
              or e["total_ms"] < old["total_ms"] or e["rows"] < old["rows"]):
            out.readded += 1
            entry = dict(e, how="readded")
        else:
            entry = dict(e, how="delta", calls=e["calls"] - old["calls"], total_ms=e["total_ms"] - old["total_ms"],
                         rows=e["rows"] - old["rows"], sum_sq=max(0.0, e["sum_sq"] - old["sum_sq"]))
        if entry["calls"] > 0:
            out.entries.append(entry)
    out.evicted = sum(1 for k in before if k not in now_keys)
    return out


@dataclass
class Group:
    """One fingerprint's share of an interval: the entries (roles, nesting) that map to it, summed."""

    fingerprint: str
    query: str
    calls: int = 0
    total_ms: float = 0.0
    rows: int = 0
    sum_sq: float = 0.0

    def summary(self, total: float) -> dict:
        mean = self.total_ms / self.calls if self.calls else 0.0
        var = max(0.0, self.sum_sq / self.calls - mean * mean) if self.calls else 0.0
        return {"fingerprint": self.fingerprint, "query": self.query, "calls": self.calls,
                "total_ms": round(self.total_ms, 3), "mean_ms": round(mean, 4), "stddev_ms": round(math.sqrt(var), 4),
                "rows": self.rows, "share": round(self.total_ms / total, 4) if total else 0.0}


def group(interval: Interval, fingerprint) -> tuple[dict[str, Group], float]:
    """Top-level statements of ``interval`` grouped by ``fingerprint`` (a ``Fingerprinter("postgres")``), and the
    time of nested statements (inside functions; already inside their caller's time, so not added again)."""
    groups: dict[str, Group] = {}
    nested = 0.0
    for e in interval.entries:
        if not e["toplevel"]:
            nested += e["total_ms"]
            continue
        fp = fingerprint(e["query"])
        g = groups.get(fp.id)
        if g is None:
            g = groups[fp.id] = Group(fp.id, fp.query)
        g.calls += e["calls"]
        g.total_ms += e["total_ms"]
        g.rows += e["rows"]
        g.sum_sq += e["sum_sq"]
    return groups, nested


def snapshot_prefix(database: str) -> str:
    return f"reports/queries/{database}/pg_stat_statements/"


def snapshot_key(database: str, taken_at: str) -> str:
    stamp = datetime.fromisoformat(taken_at).astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{snapshot_prefix(database)}{stamp}.json"


def latest_snapshot(store, database: str, before: str | None = None) -> dict | None:
    """The newest stored snapshot of ``database`` (older than the key ``before``, if given)."""
    import json

    keys = sorted(o.key for o in store.list(snapshot_prefix(database)) if o.key.endswith(".json"))
    if before is not None:
        keys = [k for k in keys if k < before]
    return json.loads(store.get_bytes(keys[-1])) if keys else None
