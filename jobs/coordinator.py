"""Runs launched from the UI (a "Materialize" click, a backfill) get the same ``ops/*`` tags as scheduled ones.

Dagster gives run tags to a job's runs, but a run of the asset graph (the implicit asset job) carries none of
ours, so a concurrency limit on ``ops/kind`` or ``ops/database`` would not hold it. ``OpsRunCoordinator`` is
the queued run coordinator that adds the missing tags when a run is submitted, before the queue reads them.
Configured in ``dagster.yaml``::

    run_coordinator:
      module: jobs.coordinator
      class: OpsRunCoordinator
"""

import logging
from collections.abc import Callable, Iterable, Mapping

from dagster import AssetKey
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

from assets.partitions import database_names, range_ends
from ops_project.backups.batch import batch_of
from ops_project.common.errors import OpsError
from ops_project.config import load_config
from schedules.backups import BACKUP_PRIORITY

# The asset's kind of work, heaviest first: a run that holds several is limited as its heaviest.
KINDS = (("database_backup", "backup"), ("backup_replica", "replication"), ("restore_verification", "restore"),
         ("dr_drill", "drill"), ("verified_rpo", "rpo"), ("deploy_validation", "deploy_validation"),
         ("slow_query_report", "queries"), ("cache_warmup", "cache"), ("capacity_report", "capacity"),
         ("capacity_metrics", "capacity"))
DATABASE_DIMENSION_TAG = "dagster/partition/database"
# Only the work that reads a live database and writes its backups is limited per database: a restore test reads
# copies in the restore region into scratch, so restore tests have their own key (``ops/kind: restore``) and a
# backup never waits for a lock a restore test holds.
PER_DATABASE_KINDS = ("backup", "replication")


def run_databases(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The first and last database a partitioned run covers (the same one for a run of one database)."""
    if DATABASE_DIMENSION_TAG in tags:
        return tags[DATABASE_DIMENSION_TAG], tags[DATABASE_DIMENSION_TAG]
    ends = range_ends(tags)
    return (ends[0][0], ends[1][0]) if ends else None


def ops_tags(asset_keys: Iterable[AssetKey] | None, tags: Mapping[str, str],
             batch_for: Callable[[str], str | None] = lambda _db: None) -> dict[str, str]:
    """The ``ops/*`` tags (and a backup's priority) a run should carry and does not yet: never overrides.

    A backup of one database carries ``ops/database``, and the scheduled batch that holds it (``batch_for``)
    as ``ops/batch``, so it never overlaps the batch run that backs up the same database. A run of a range of
    databases launched by hand carries the batch of its first database (a run holds one value per tag key: a
    range that spans two scheduled batches is held back by the first one only).

    The kind comes from the run's assets, or for a run of a whole job (no asset selection: a job launched from
    the Launchpad, GraphQL or the CLI) from the ``ops/kind`` tag the job itself gives its runs."""
    heads = {key.path[0] for key in asset_keys or ()}
    wanted: dict[str, str] = {}
    kind = next((kind for head, kind in KINDS if head in heads), None) or tags.get("ops/kind")
    if kind:
        wanted["ops/kind"] = kind
        if kind == "backup":
            wanted["dagster/priority"] = BACKUP_PRIORITY  # a backup's window closes; a backfill's does not
    span = run_databases(tags)
    if span and kind in PER_DATABASE_KINDS:
        first, last = span
        if first == last:
            wanted["ops/database"] = first
        batch = batch_for(first)
        if batch:
            wanted["ops/batch"] = batch
    return {k: v for k, v in wanted.items() if k not in tags}


def _batch_for(database: str, instance) -> str | None:
    """From the configuration this process serves (``OPS_CONFIG``), parsed once per file version, and for a
    discovering configuration the tenants' dynamic partitions (the order the schedule's batches follow)."""
    try:
        cfg = load_config()
    except OpsError as exc:  # the run still queues, limited per database; say why the batch tag is missing
        logging.getLogger("ops_project").warning(f"run coordinator: no ops/batch tag ({exc})")
        return None
    return batch_of(database_names(cfg, instance), cfg.backup.batch_size, database)


class OpsRunCoordinator(QueuedRunCoordinator):
    """The queued run coordinator (same settings), adding the ``ops/*`` tags a run launched by hand lacks."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        missing = ops_tags(run.asset_selection, run.tags, lambda db: _batch_for(db, self._instance))
        if missing:
            self._instance.add_run_tags(run.run_id, missing)
            run = run.with_tags({**run.tags, **missing})
            context = context._replace(dagster_run=run)
        return super().submit_run(context)
