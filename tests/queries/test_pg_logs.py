"""PostgreSQL logs from a real server of the test's own, with a workload driven by ``pgbench`` custom scripts in
the simple and the extended protocol: the three log formats give identical aggregates, the extended protocol is
not counted three times, IN lists of any length and literals or ``$n`` parameters are one fingerprint."""

from __future__ import annotations

import gzip
import subprocess

import psycopg
import pytest

from ops_project.queries.analyze import NoStatementsError, analyze
from ops_project.queries.pglog import LogError
from tests.servers import LOG_PREFIX, PG_BIN, logging_postgres

TRANSACTIONS = 40
SCRIPT = """\\set k random(1, 500)
\\set k2 random(501, 1000)
\\set k3 random(1001, 1500)
SELECT v FROM ops_items WHERE k = :k;
SELECT count(*) FROM ops_items i WHERE i.k IN (:k, :k2, :k3);
SELECT count(*) FROM ops_items j WHERE j.k IN (:k);
SELECT k, v
  FROM ops_items
 WHERE v LIKE 'item-1%'
 ORDER BY k
 LIMIT 5;
UPDATE ops_items SET v = v WHERE k = :k;
"""
PER_TRANSACTION = 5


@pytest.fixture(scope="module")
def pg():
    with logging_postgres() as server:
        with psycopg.connect(server.url, autocommit=True) as con:
            con.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            con.execute("CREATE TABLE ops_items (k int PRIMARY KEY, v text NOT NULL)")
            con.execute("INSERT INTO ops_items SELECT g, 'item-' || g FROM generate_series(1, 2000) g")
        yield server


def workload(pg, tmp_path, *modes: str) -> dict[str, object]:
    """Run the script once per protocol mode; return the log written meanwhile, one file per format."""
    script = tmp_path / "workload.sql"
    script.write_text(SCRIPT)
    marks = pg.marks(tmp_path / "sync")
    for mode in modes:
        done = subprocess.run([str(PG_BIN / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                               "-M", mode, "-c", "1", "-t", str(TRANSACTIONS), "-f", str(script), "postgres"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    with psycopg.connect(pg.url, autocommit=True) as con:  # a checkpoint and an error: neither is a statement
        con.execute("CHECKPOINT")
        with pytest.raises(psycopg.errors.UndefinedTable):
            con.execute("SELECT * FROM no_such_table")
    return pg.tail_since(marks, tmp_path / "logs")


def by_fingerprint(report: dict) -> dict[str, tuple[int, float]]:
    return {q["fingerprint"]: (q["calls"], q["total_ms"]) for q in report["queries"]}


def test_three_formats_give_identical_aggregates(pg, tmp_path):
    logs = workload(pg, tmp_path, "simple")
    stderr = analyze([logs["stderr"]], "stderr", LOG_PREFIX)
    csvlog = analyze([logs["csvlog"]], "csvlog")
    jsonlog = analyze([logs["jsonlog"]], "auto")  # detected by name
    assert stderr["statements"] == csvlog["statements"] == jsonlog["statements"]
    assert by_fingerprint(stderr) == by_fingerprint(csvlog) == by_fingerprint(jsonlog)
    workload_calls = {q["query"]: q["calls"] for q in stderr["queries"] if "ops_items" in q["query"]}
    # five statements, the two IN lists as one: four shapes, each TRANSACTIONS calls (the IN shape twice)
    assert sorted(workload_calls.values()) == sorted([TRANSACTIONS] * 3 + [2 * TRANSACTIONS]), workload_calls
    multi = next(q for q in stderr["queries"] if "LIKE" in q["query"])
    assert "ORDER BY k" in multi["query"] and "item-1" not in multi["query"]  # joined lines, literals out
    texts = [q["query"] for q in stderr["queries"]]
    assert not any("no_such_table" in t for t in texts)  # an error has no duration: not a statement
    assert not any("checkpoint starting" in t or "connection" in t for t in texts)  # server lines are not
    assert [q["calls"] for q in stderr["queries"] if q["query"].upper() == "CHECKPOINT"] == [1]  # the command is
    top = stderr["queries"][0]
    assert top["total_ms"] >= stderr["queries"][-1]["total_ms"]  # ranked by total time
    assert 0 < top["p50_ms"] <= top["p95_ms"] <= top["p99_ms"] <= top["max_ms"]
    assert all("item-" not in q["example"] for q in stderr["queries"])  # keep_examples is off


def test_the_extended_protocol_is_one_call_and_parameters_meet_literals(pg, tmp_path):
    logs = workload(pg, tmp_path, "simple", "extended")
    report = analyze([logs["stderr"]], "stderr", LOG_PREFIX)
    workload_calls = {q["query"]: q["calls"] for q in report["queries"] if "ops_items" in q["query"]}
    # literals (simple) and $n parameters (extended) land in the same groups; parse/bind are not calls
    assert sorted(workload_calls.values()) == sorted([2 * TRANSACTIONS] * 3 + [4 * TRANSACTIONS]), workload_calls
    assert report["parse_bind_ms"] > 0
    csv_report = analyze([logs["csvlog"]], "csvlog")
    assert by_fingerprint(csv_report) == by_fingerprint(report)


def test_gzip_globs_and_several_files(pg, tmp_path):
    logs = workload(pg, tmp_path, "simple")
    plain = analyze([logs["stderr"]], "stderr", LOG_PREFIX)
    lines = logs["stderr"].read_text().splitlines(keepends=True)
    half = len(lines) // 2
    while lines[half].startswith("\t"):  # split between entries, not inside a multi-line statement
        half += 1
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "postgresql-1.log").write_text("".join(lines[:half]))
    with gzip.open(tmp_path / "split" / "postgresql-2.log.gz", "wt") as fh:
        fh.write("".join(lines[half:]))
    split = analyze([str(tmp_path / "split" / "postgresql-*")], "stderr", LOG_PREFIX)
    assert by_fingerprint(split) == by_fingerprint(plain) and split["statements"] == plain["statements"]
    assert len(split["files"]) == 2


def test_a_wrong_prefix_fails_naming_the_file_and_the_prefix(pg, tmp_path):
    logs = workload(pg, tmp_path, "simple")
    with pytest.raises(NoStatementsError) as err:
        analyze([logs["stderr"]], "stderr", "%m [%p] ")  # the default prefix: not this server's
    message = str(err.value)
    assert str(logs["stderr"]) in message and "'%m [%p] '" in message and "first line that matched nothing" in message
    with pytest.raises(LogError, match="does not exist"):
        analyze([tmp_path / "nope.log"], "stderr", LOG_PREFIX)
    with pytest.raises(LogError, match="no log file matches"):
        analyze([str(tmp_path / "none-*.log")], "stderr", LOG_PREFIX)


def test_log_statement_with_log_duration_joins_by_session(pg, tmp_path):
    """``log_statement = all`` + ``log_duration = on`` (statement and duration on separate lines)."""
    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute("ALTER SYSTEM SET log_min_duration_statement = -1")
        con.execute("ALTER SYSTEM SET log_statement = 'all'")
        con.execute("ALTER SYSTEM SET log_duration = on")
        con.execute("SELECT pg_reload_conf()")
    try:
        logs = workload(pg, tmp_path, "simple", "extended")
    finally:
        with psycopg.connect(pg.url, autocommit=True) as con:
            con.execute("ALTER SYSTEM RESET ALL")
            con.execute("SELECT pg_reload_conf()")
    assert "statement: SELECT v FROM ops_items" in logs["stderr"].read_text()
    report = analyze([logs["stderr"]], "stderr", LOG_PREFIX)
    workload_calls = {q["query"]: q["calls"] for q in report["queries"] if "ops_items" in q["query"]}
    assert sorted(workload_calls.values()) == sorted([2 * TRANSACTIONS] * 3 + [4 * TRANSACTIONS]), workload_calls
    assert by_fingerprint(analyze([logs["jsonlog"]], "jsonlog")) == by_fingerprint(report)



def test_the_cli_writes_the_design_report_and_fails_plainly(pg, tmp_path):
    import json
    import sys

    logs = workload(pg, tmp_path, "simple")
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "ops_project", "queries", "analyze", str(logs["stderr"]),
                           "--log-line-prefix", LOG_PREFIX, "--top", "3", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["statements"] >= PER_TRANSACTION * TRANSACTIONS and len(report["queries"]) == 3
    for q in report["queries"]:
        assert {"fingerprint", "query", "calls", "total_ms", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms",
                "example"} <= set(q)
    totals = [q["total_ms"] for q in report["queries"]]
    assert totals == sorted(totals, reverse=True)
    wrong = subprocess.run([sys.executable, "-m", "ops_project", "queries", "analyze", str(logs["stderr"])],
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert str(logs["stderr"]) in wrong.stderr and "'%m [%p] '" in wrong.stderr


def test_one_database_of_the_servers_log(pg, tmp_path):
    """The server logs every database in one file: a source can take only its own (%d, csv/json dbname)."""
    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS ops_other")
        con.execute("CREATE DATABASE ops_other")
    marks = pg.marks(tmp_path / "sync")
    other = pg.url.rsplit("/", 1)[0] + "/ops_other"
    with psycopg.connect(other, autocommit=True) as con:
        for _ in range(7):
            con.execute("SELECT 'only in ops_other'::text, 1 + 1")
    logs = workload(pg, tmp_path, "simple")
    logs = pg.tail_since(marks, tmp_path / "both")

    def shapes(report):
        return {q["query"]: q["calls"] for q in report["queries"]}

    everything = analyze([logs["stderr"]], "stderr", LOG_PREFIX, top=100)
    assert any("1 + 1" in q or "$2 + $3" in q for q in shapes(everything))
    for fmt, path, prefix in (("stderr", logs["stderr"], LOG_PREFIX), ("csvlog", logs["csvlog"], None),
                              ("jsonlog", logs["jsonlog"], None)):
        mine = analyze([path], fmt, prefix, top=100, log_database="postgres")
        assert not any("1 + 1" in q or "$2 + $3" in q for q in shapes(mine)), fmt
        assert sum(c for q, c in shapes(mine).items() if "ops_items" in q) == PER_TRANSACTION * TRANSACTIONS, fmt
        theirs = analyze([path], fmt, prefix, top=100, log_database="ops_other")
        assert sum(shapes(theirs).values()) == 7, (fmt, shapes(theirs))
    with pytest.raises(LogError, match="has no %d"):
        analyze([logs["stderr"]], "stderr", "%t:%r:%u@[%p]: ", log_database="postgres")
