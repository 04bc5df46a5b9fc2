"""pg_stat_statements snapshots of a real server of the test's own (``pg_stat_statements.max`` at its minimum,
100) diffed run to run: exact deltas, a new entry, an entry reset alone (re-added: its absolute values, never
a negative delta), a full ``pg_stat_statements_reset()`` (the interval discarded), evictions (``dealloc``
reported as lost coverage); the logs' share of the interval's time; the asset through Dagster."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from dagster import DagsterInstance, MultiPartitionKey

from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from ops_project.queries import pgss
from ops_project.queries.config import QueriesConfig
from ops_project.queries.daily import make_daily, report_key
from ops_project.queries.fingerprint import Fingerprinter
from tests.conftest import local_region
from tests.servers import LOG_PREFIX, logging_postgres

TRACKED = "SELECT v FROM pgss_items WHERE k = %s"


@pytest.fixture(scope="module")
def pg():
    with logging_postgres(max_statements=100) as server:
        with psycopg.connect(server.url, autocommit=True) as con:
            con.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            con.execute("CREATE TABLE pgss_items (k int PRIMARY KEY, v text NOT NULL)")
            con.execute("INSERT INTO pgss_items SELECT g, 'item-' || g FROM generate_series(1, 500) g")
        yield server


def run(pg, sql: str, times: int, params=None) -> None:
    with psycopg.connect(pg.url, autocommit=True) as con:
        for i in range(times):
            con.execute(sql, params if params is not None else ((i % 500) + 1,) if "%s" in sql else None)


def tracked(interval: pgss.Interval) -> list[dict]:
    return [e for e in interval.entries if "FROM pgss_items WHERE k = $1" in e["query"] and e["toplevel"]]


def test_deltas_are_exact_and_a_new_entry_counts_from_zero(pg):
    run(pg, TRACKED, 7)
    first = pgss.take_snapshot(pg.url)
    run(pg, TRACKED, 25)
    run(pg, "SELECT count(*) FROM pgss_items WHERE v LIKE %s", 4, ("item-4%",))
    second = pgss.take_snapshot(pg.url)
    interval = pgss.diff(first, second)
    assert interval.discarded is None
    (entry,) = tracked(interval)
    assert entry["how"] == "delta" and entry["calls"] == 25 and entry["rows"] == 25 and entry["total_ms"] > 0
    (like,) = [e for e in interval.entries if "v LIKE $1" in e["query"]]
    assert like["how"] == "new" and like["calls"] == 4
    assert all(e["calls"] > 0 and e["total_ms"] >= 0 and e["rows"] >= 0 and e["sum_sq"] >= 0
               for e in interval.entries)
    with psycopg.connect(pg.url, autocommit=True) as con:  # a utility statement keeps its literal in the view
        con.execute("SET application_name = 'secret-literal-xyz'")
    assert "secret-literal-xyz" not in json.dumps(pgss.take_snapshot(pg.url))  # snapshots are stored
    groups, _nested = pgss.group(interval, Fingerprinter("postgres"))
    # the same fingerprint space as the logs: the literal form of the statement lands in the counters' group
    assert Fingerprinter("postgres")("SELECT v FROM pgss_items WHERE k = 42").id in groups


def test_an_entry_reset_alone_is_readded_never_negative(pg):
    run(pg, TRACKED, 30)
    first = pgss.take_snapshot(pg.url)
    with psycopg.connect(pg.url, autocommit=True) as con:
        (queryid,) = next(r for r in con.execute(
            "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'SELECT v FROM pgss_items WHERE k = $1%' "
            "AND toplevel"))
        con.execute("SELECT pg_stat_statements_reset(0, 0, %s)", (queryid,))  # that entry only: no stats_reset
    run(pg, TRACKED, 3)
    second = pgss.take_snapshot(pg.url)
    interval = pgss.diff(first, second)
    assert interval.discarded is None
    (entry,) = tracked(interval)
    assert entry["how"] == "readded" and entry["calls"] == 3  # 3 since it came back, not 3 - 30


def test_a_full_reset_discards_the_interval(pg):
    first = pgss.take_snapshot(pg.url)
    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute("SELECT pg_stat_statements_reset()")
    run(pg, TRACKED, 5)
    interval = pgss.diff(first, pgss.take_snapshot(pg.url))
    assert interval.entries == [] and "was reset" in interval.discarded


def test_evictions_are_reported_as_lost_coverage(pg):
    first = pgss.take_snapshot(pg.url)
    with psycopg.connect(pg.url, autocommit=True) as con:  # 150 shapes (k, k+k, ...) for 100 entries
        for n in range(1, 151):
            con.execute("SELECT " + ", ".join(["k"] * n) + " FROM pgss_items WHERE k = 1")
    second = pgss.take_snapshot(pg.url)
    interval = pgss.diff(first, second)
    assert interval.dealloc > 0 and interval.evicted + interval.new > 0
    assert "pg_stat_statements.max (now 100)" in interval.lost_coverage
    assert all(e["calls"] > 0 for e in interval.entries)


def test_the_report_gives_the_share_of_time_the_logs_captured(pg, tmp_path):
    """Half the interval's time is in the log handed over (the other half ran after it was copied)."""
    store = _store(tmp_path)
    today = datetime.now(UTC).date().isoformat()
    tz = ZoneInfo("UTC")
    marks = pg.marks(tmp_path / "sync")
    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute("SELECT pg_stat_statements_reset()")  # only the sleeps below weigh anything
    first = pgss.take_snapshot(pg.url)
    store.put_bytes(pgss.snapshot_key("core", first["taken_at"]), json.dumps(first).encode())
    run(pg, "SELECT pg_sleep(0.08)", 4)
    logs = pg.tail_since(marks, tmp_path / "logs")  # the log ends here
    run(pg, "SELECT pg_sleep(0.08)", 4)
    settings = QueriesConfig(sources=[{"database": "core", "kind": "postgres_log", "paths": [logs["stderr"]],
                                       "log_line_prefix": LOG_PREFIX},
                                      {"database": "core", "kind": "pg_stat_statements"}])
    rep, _where = make_daily(store, settings, "core", today, tz, stat_statements_url=pg.url)
    stat = rep["pg_stat_statements"]
    assert stat["discarded"] is None and stat["statements"] >= 8
    sleep = next(q for q in stat["queries"] if "pg_sleep" in q["query"])
    assert sleep["calls"] == 8 and sleep["p95_ms"] is None  # counters: no percentile is made up
    assert 0.4 <= stat["coverage"]["share"] <= 0.6, stat["coverage"]
    logged = next(q for q in rep["queries"] if "pg_sleep" in q["query"])
    assert logged["calls"] == 4 and logged["fingerprint"] == sleep["fingerprint"]  # one fingerprint space
    stored = sorted(o.key for o in store.list(pgss.snapshot_prefix("core")))
    assert len(stored) == 2  # the run's own snapshot is kept for the next diff


def _store(tmp_path):
    from ops_project.storage import open_store
    from ops_project.storage.config import RegionConfig

    (tmp_path / "region").mkdir(exist_ok=True)
    return open_store(RegionConfig(name="af-south-1", kind="local", path=tmp_path / "region"))


def test_the_asset_reports_a_database_from_its_counters_alone(pg, tmp_path, write_config, monkeypatch):
    monkeypatch.setenv("OPS_TEST_PGSS_URL", pg.url)
    cfg = load_config(write_config([{"name": "core", "engine": "postgres", "url_env": "OPS_TEST_PGSS_URL"}],
                                   [local_region(tmp_path, "af-south-1")],
                                   queries={"sources": [{"database": "core", "kind": "pg_stat_statements"}]}))
    job = build_definitions(cfg).resolve_job_def("slow_query_job")
    yesterday = (datetime.now(cfg.tz).date() - timedelta(days=1)).isoformat()
    key = MultiPartitionKey({"database": "core", "day": yesterday})
    with DagsterInstance.ephemeral() as instance:
        first = job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
        assert not first.success  # nothing to diff against yet: no report, and it says why
        failure = next(e for e in first.all_events if e.event_type_value == "STEP_FAILURE")
        assert "first pg_stat_statements snapshot of core" in failure.event_specific_data.user_failure_data.description
        run(pg, TRACKED, 12)
        second = job.execute_in_process(partition_key=key, instance=instance)
        meta = second.asset_materializations_for_node("slow_query_report")[0].metadata
        assert meta["statements"].value >= 12 and "stat_statements_seconds" in meta
        assert "from pg_stat_statements" in meta["report"].value
        rep = json.loads(Clients(cfg).store(cfg.primary).get_bytes(report_key("core", yesterday)))
        (row,) = [q for q in rep["queries"] if "FROM pgss_items WHERE k = $1" in q["query"]]
        assert row["calls"] == 12 and rep["source"] == "pg_stat_statements" and rep["total_ms"] > 0
        old = (date.fromisoformat(yesterday) - timedelta(days=5)).isoformat()  # a backfill: no live snapshot
        past = job.execute_in_process(partition_key=MultiPartitionKey({"database": "core", "day": old}),
                                      instance=instance, raise_on_error=False)
        assert not past.success
        message = next(e for e in past.all_events if e.event_type_value == "STEP_FAILURE") \
            .event_specific_data.user_failure_data.description
        assert "a past day cannot be reported" in message


def _snap(at: str, entries: list[tuple], *, reset: str = "2026-11-01T00:00:00+00:00", dealloc: int = 0) -> dict:
    return {"taken_at": at, "stats_reset": reset, "dealloc": dealloc, "max": 5000, "hidden": 0,
            "entries": [{"userid": 10, "dbid": 5, "queryid": q, "toplevel": True, "query": f"SELECT {q}",
                         "calls": calls, "total_ms": ms, "rows": calls, "sum_sq": ms * ms / max(calls, 1),
                         "stats_since": since} for q, calls, ms, since in entries]}


def test_a_moved_stats_since_means_readded_even_when_counters_grew():
    """PostgreSQL 17 says when an entry was (re)created: an entry evicted and re-added that has since run more
    often than before is still re-added (its absolute values), not a delta of two unrelated counters."""
    older = _snap("2026-11-20T00:00:00+00:00", [(1, 10, 50.0, "2026-11-01T00:00:00+00:00"),
                                                 (2, 40, 80.0, "2026-11-01T00:00:00+00:00"),
                                                 (3, 5, 5.0, "2026-11-01T00:00:00+00:00")])
    newer = _snap("2026-11-21T00:00:00+00:00", [(1, 25, 90.0, "2026-11-20T12:00:00+00:00"),
                                                 (2, 46, 95.0, "2026-11-01T00:00:00+00:00"),
                                                 (4, 2, 1.0, "2026-11-20T13:00:00+00:00")], dealloc=3)
    interval = pgss.diff(older, newer)
    got = {e["queryid"]: (e["how"], e["calls"], e["total_ms"]) for e in interval.entries}
    assert got == {1: ("readded", 25, 90.0), 2: ("delta", 6, 15.0), 4: ("new", 2, 1.0)}
    assert (interval.new, interval.readded, interval.evicted, interval.dealloc) == (1, 1, 1, 3)


def test_counters_regressions_are_judged_on_means_with_welch():
    from ops_project.queries.daily import _compare

    def day(mean: float, sd: float, calls: int) -> dict:
        q = {"fingerprint": "f1", "query": "SELECT 1", "calls": calls, "mean_ms": mean, "stddev_ms": sd,
             "p95_ms": None}
        return {"day": "2026-11-20", "queries": [q], "all_fingerprints": ["f1"]}

    (slower,) = _compare(day(9.0, 2.0, 500), day(3.0, 1.0, 500), 1.5)[2]
    assert slower["p_value"] < 1e-6 and "Welch" in slower["why"]
    assert _compare(day(3.2, 3.0, 500), day(3.0, 3.0, 500), 1.5)[2] == []  # within the factor
    assert _compare(day(9.0, 30.0, 10), day(3.0, 30.0, 10), 1.5)[2] == []  # too noisy to convict


def test_postgres_hints_name_sequential_scans_of_large_tables_only(pg, tmp_path):
    from ops_project.queries.analyze import analyze
    from ops_project.queries.plans import postgres_hints

    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute("CREATE TABLE pgss_big (id int PRIMARY KEY, email text NOT NULL)")
        con.execute("INSERT INTO pgss_big SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 20000) g")
        con.execute("ANALYZE pgss_big")
        con.execute("ANALYZE pgss_items")
    marks = pg.marks(tmp_path / "sync")
    run(pg, "SELECT id FROM pgss_big WHERE email = %s", 3, ("user7@example.com",))  # no index on email
    run(pg, "SELECT email FROM pgss_big WHERE id = %s", 3, (7,))  # the primary key
    run(pg, "SELECT k FROM pgss_items WHERE v = %s", 3, ("item-3",))  # 500 rows: small, a scan is fine
    logs = pg.tail_since(marks, tmp_path / "logs")
    rep = analyze([logs["stderr"]], "stderr", LOG_PREFIX)
    hints = postgres_hints(pg.url, rep["queries"], top=len(rep["queries"]))
    by_query = {q["fingerprint"]: q["query"] for q in rep["queries"]}
    assert [(by_query[h["fingerprint"]], h["table"]) for h in hints] == \
        [("SELECT id FROM pgss_big WHERE email = $1", "public.pgss_big")], hints
    assert "email" in hints[0]["plan"] and "user7" not in json.dumps(hints)  # the generic plan: no literal
