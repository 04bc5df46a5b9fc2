"""The ``alerts`` section: where alerts go and how often the same one may repeat."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ops_project.common.config import Strict


class AlertsConfig(Strict):
    webhook_url_env: str | None = None
    ui_base_url: str = "http://127.0.0.1:3000"  # for the run link in every alert
    dedup_hours: float = Field(24, gt=0)
    state_dir: Path | None = None  # where sent alerts are remembered (default: .ops/alerts beside the file)
