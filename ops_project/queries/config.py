"""The ``queries`` section: where each database's query logs are, and how reports rank and compare."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ops_project.common.config import Strict

LogFormat = Literal["auto", "stderr", "csvlog", "jsonlog", "sqlite-jsonl"]


class QuerySource(Strict):
    database: str
    # postgres_log: the server's log files; pg_stat_statements: snapshots of the live server (the database's
    # url_env), diffed run to run; sqlite_jsonl: D1-style query logs
    kind: Literal["postgres_log", "pg_stat_statements", "sqlite_jsonl"]
    paths: list[Path] = []  # files or globs; .gz is read as gzip
    format: LogFormat = "auto"
    log_line_prefix: str | None = None  # the server's log_line_prefix (stderr logs); default '%m [%p] '
    log_database: str | None = None  # PostgreSQL: only this database's statements (%d); default: all in the log



class QueriesConfig(Strict):
    sources: list[QuerySource] = []
    top: int = Field(50, ge=1, le=10000)
    regression_factor: float = Field(1.5, gt=1)
    compare_days: int = Field(7, ge=1, le=90)  # new = unseen in these many days; also compared with them pooled
    keep_examples: bool = False  # literals stay out of reports unless turned on
