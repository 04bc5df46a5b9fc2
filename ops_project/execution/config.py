"""The ``execution`` section: which engine runs the steps of a run."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ops_project.common.config import Strict

QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class CeleryConfig(Strict):
    broker_url_env: str = "OPS_CELERY_BROKER_URL"  # amqp://user:password@host:5672/vhost: a secret
    backend: str = "rpc://"  # results over the broker; no URL secret of its own
    queue: str = "ops"  # the queue the steps go to: start the workers with -q <queue>

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str) -> str:
        if not QUEUE.fullmatch(value):
            raise ValueError(f"{value!r} is not a queue name (letters, digits, '_', '.', '-')")
        return value

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        if "@" in value:
            raise ValueError("a results backend URL with credentials is a secret: use rpc:// (results over the "
                             "broker) or a backend without a password")
        return value


class ExecutionConfig(Strict):
    executor: Literal["in_process", "multiprocess", "celery"] = "in_process"
    max_concurrent_steps: int = Field(2, ge=1, le=64)  # multiprocess only
    celery: CeleryConfig | None = None

    @model_validator(mode="after")
    def _celery(self) -> ExecutionConfig:
        if self.executor == "celery" and self.celery is None:
            return self.model_copy(update={"celery": CeleryConfig()})
        return self
