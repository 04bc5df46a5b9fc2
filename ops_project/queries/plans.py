"""Index hints backed by the database's own planner, for the top statements of a report.

- SQLite: ``EXPLAIN QUERY PLAN`` on a database opened read-only (a copy, or the live file: the planner reads
  only the schema). A ``SCAN <table>`` without an index reads the whole table on every call; an
  ``AUTOMATIC INDEX`` is an index SQLite builds for each run of the statement and throws away.
- PostgreSQL: the generic plan (``plan_cache_mode = force_generic_plan``: the plan for any parameter values,
  as a prepared statement of the application gets it) in a read-only transaction, never executed; a
  ``Seq Scan`` on a table of at least ``LARGE_TABLE_ROWS`` rows (``pg_class.reltuples``) is a hint.

Both are worth an index when the statement is near the top of the report.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from ops_project.common.errors import OpsError

LARGE_TABLE_ROWS = 10_000
EXPLAINED = 10  # the top statements by total time that are explained

_SCAN = re.compile(r"^SCAN (?:TABLE )?(?P<table>\S+)(?P<rest>.*)$")
_AUTO = re.compile(r"(?:AUTOMATIC (?:PARTIAL )?(?:COVERING )?INDEX ON (?P<table>\S+)\s*\((?P<cols>[^)]*)\)"
                   r"|^(?:SEARCH|SCAN) (?P<table2>\S+) USING AUTOMATIC (?:PARTIAL )?(?:COVERING )?INDEX "
                   r"\((?P<cols2>[^)]*)\))")


def sqlite_hints(db_path: str | Path, queries: list[dict]) -> list[dict]:
    """For each report row (``fingerprint``, ``query`` with ``?`` placeholders): the planner's findings."""
    path = Path(db_path)
    if not path.is_file():
        raise OpsError(f"SQLite database {path} for EXPLAIN QUERY PLAN does not exist")
    con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)  # read-only: never changes it
    hints = []
    try:
        for q in queries:
            sql = q["query"]
            if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
                continue
            try:
                plan = con.execute("EXPLAIN QUERY PLAN " + sql, [None] * sql.count("?")).fetchall()
            except sqlite3.Error:
                continue  # a shape the planner cannot take without its real values: no hint, not an error
            for _id, _parent, _unused, detail in plan:
                scan, auto = _SCAN.match(detail), _AUTO.search(detail)
                if auto:
                    table, cols = auto["table"] or auto["table2"], auto["cols"] or auto["cols2"]
                    hints.append({"fingerprint": q["fingerprint"], "table": table, "plan": detail,
                                  "hint": f"SQLite builds a temporary index on {table}({cols}) for every call: "
                                          f"create it"})
                elif scan and "INDEX" not in scan["rest"] and scan["table"] != "CONSTANT":
                    hints.append({"fingerprint": q["fingerprint"], "table": scan["table"], "plan": detail,
                                  "hint": f"full scan of {scan['table']} on every call: index the columns this "
                                          f"statement filters {scan['table']} on"})
    finally:
        con.close()
    return hints


def _seq_scans(node: dict):
    if node.get("Node Type") == "Seq Scan":
        yield node
    for child in node.get("Plans", ()):
        yield from _seq_scans(child)


def postgres_hints(url: str, queries: list[dict], *, large_rows: int = LARGE_TABLE_ROWS,
                   top: int = EXPLAINED) -> list[dict]:
    """For the first ``top`` report rows (``query`` with ``$n`` parameters): sequential scans of large tables."""
    import json

    import psycopg

    hints = []
    try:
        con = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise OpsError(f"cannot connect to the database for EXPLAIN: {type(exc).__name__}") from None
    with con:
        con.execute("SET plan_cache_mode = force_generic_plan")
        con.execute("SET statement_timeout = '5s'")
        for i, q in enumerate(queries[:top]):
            sql = q["query"]
            if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
                continue
            params = len(set(re.findall(r"\$(\d+)", sql)))
            try:
                with con.transaction():
                    con.execute("SET TRANSACTION READ ONLY")
                    con.execute(f"PREPARE ops_explain_{i} AS {sql}")
                    args = f"({', '.join(['NULL'] * params)})" if params else ""
                    (plan,), = con.execute(f"EXPLAIN (FORMAT JSON) EXECUTE ops_explain_{i}{args}").fetchall()
                    con.execute(f"DEALLOCATE ops_explain_{i}")
            except psycopg.Error:
                continue  # a shape the planner cannot take (a text that was cut, a dropped table): no hint
            plan = json.loads(plan) if isinstance(plan, str) else plan
            for scan in _seq_scans(plan[0]["Plan"]):
                table = f"{scan.get('Schema', 'public')}.{scan['Relation Name']}"
                (rows,), = con.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                                       (table,)).fetchall() or [(None,)]
                if rows is None or rows < large_rows:
                    continue
                on = f" filtering on {scan['Filter']}" if scan.get("Filter") else ""
                hints.append({"fingerprint": q["fingerprint"], "table": table, "rows": rows,
                              "plan": f"Seq Scan on {table}{on}",
                              "hint": f"sequential scan of {table} (about {rows} rows) on every call{on}: index "
                                      f"the columns it filters on"})
    return hints
