"""PostgreSQL instance storage that keeps a few connections open (``deploy/dagster.yaml``, ``storage: custom``).

dagster-postgres opens a new connection for every statement (SQLAlchemy's ``NullPool``), and a run's creation
writes one "planned" event per asset and partition: a backup batch of 50 databases writes 159, each costing two
fresh TCP connections. Measured here, 2 runs of 50 databases took 7.9 s to create with fresh connections and
2.4 s with a pool (the schedule tick for a thousand databases creates 20). This is dagster-postgres' own storage
with the pool its webserver already uses (``optimize_for_webserver``: one connection kept, a few more on demand,
recycled hourly, no statement timeout), in every process: daemon, code server, webserver and runs (a run's
process loads this class again from the instance reference).

With the pool, each planned event still costs a few statements and commits of its own (insert, notify, the
asset or check index), so a schedule tick creating 20 batch runs wrote 3,180 events one by one. Dagster hands
a run's planned events to ``store_event_batch`` when ``DAGSTER_EVENT_BATCH_SIZE`` is set, but dagster-postgres
only batches materializations and stores the rest one by one. Here a batch of planned events is stored by
dagster-postgres' own ``store_event`` for each event, all on one connection in one transaction: one commit
per run instead of hundreds, the same rows. If the batch fails, the transaction is rolled back and Dagster
stores the events one by one (its own fallback), so nothing is written twice.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager, nullcontext

from dagster import DagsterEventType
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

POOL = {"statement_timeout": 0, "pool_recycle": 3600, "max_overflow": 4}
PLANNED = frozenset({DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED})
# Dagster sends a run's planned events in batches of at most this many (a batch run of 50 databases plans
# 159); the processes that create runs (daemon, webserver) read it from their environment.
EVENT_BATCH_SIZE = "1000"


class OneTransactionEventLogStorage(PostgresEventLogStorage):
    """dagster-postgres' event log, storing a batch of planned events in one transaction."""

    def __init__(self, *args, **kwargs):
        self._held = threading.local()
        super().__init__(*args, **kwargs)

    def _connect(self):
        held = getattr(self._held, "conn", None)
        return nullcontext(held) if held is not None else super()._connect()

    @contextmanager
    def _one_transaction(self):
        with super()._connect() as conn:
            conn = conn.execution_options(isolation_level="READ COMMITTED")  # noqa: PLW2901 - the engine autocommits
            with conn.begin():
                self._held.conn = conn
                try:
                    yield
                finally:
                    self._held.conn = None

    def store_event_batch(self, events) -> None:  # noqa: D102 - EventLogStorage's own
        if not events or any(event.get_dagster_event().event_type not in PLANNED for event in events):
            return super().store_event_batch(events)
        with self._one_transaction():
            for event in events:
                self.store_event(event)
        return None


def _arguments(inst_data, config_value) -> dict:
    return {"inst_data": inst_data, "postgres_url": pg_url_from_config(config_value),
            "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
            "token_provider": get_token_provider_from_config(config_value)}


class PooledPostgresStorage(DagsterPostgresStorage):
    """``storage: custom: {module: jobs.storage, class: PooledPostgresStorage, config: <postgres config>}``."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None, token_provider=None):
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        self._event_log_storage = OneTransactionEventLogStorage(postgres_url, should_autocreate_tables,
                                                               token_provider=token_provider)
        # planned events reach store_event_batch only when batching is on; an operator's own value is kept
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
        for storage in (self._run_storage, self._event_log_storage):
            storage.optimize_for_webserver(**POOL)

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # noqa: D102 - dagster-postgres' own
        return cls(**_arguments(inst_data, config_value))
