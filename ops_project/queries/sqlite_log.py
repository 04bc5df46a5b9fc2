"""SQLite / D1 query logs: JSON lines ``{"ts", "sql", "duration_ms", "rows_read", "rows_written"}``, the shape
D1's query insights give, read as statement calls."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from ops_project.queries.pglog import ReadStats, expand, open_text
from ops_project.queries.statements import Call, StatementStats


def calls(paths: Iterable[str | Path], read: ReadStats, stats: StatementStats) -> Iterator[Call]:
    for path in expand(paths):
        read.files.append(f"{path} (sqlite-jsonl)")
        with open_text(path) as fh:
            for line in fh:
                read.lines += 1
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                    sql, ms = doc["sql"], float(doc["duration_ms"])
                except (ValueError, KeyError, TypeError):
                    read.miss(line)
                    continue
                if not isinstance(sql, str):
                    read.miss(line)
                    continue
                rows = int(doc.get("rows_read") or 0) + int(doc.get("rows_written") or 0)
                stats.calls += 1
                yield Call(str(doc.get("ts", "")), ms, sql, rows)
