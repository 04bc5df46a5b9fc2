"""Index hints backed by the database's own planner: ``EXPLAIN QUERY PLAN`` of the top statements on a
read-only copy of a SQLite database (the newest verified backup restored to scratch is a good one).

A ``SCAN <table>`` without an index reads the whole table on every call; an ``AUTOMATIC INDEX`` is an index
SQLite builds for each run of the statement and throws away. Both are worth an index when the statement is
near the top of the report.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from ops_project.common.errors import OpsError

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
