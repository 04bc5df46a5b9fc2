"""Runs launched from the UI (a "Materialize" click, a backfill) get the same ``ops/*`` tags as scheduled ones.

Dagster gives run tags to a job's runs, but a run of the asset graph (the implicit asset job) carries none of
ours, so a concurrency limit on ``ops/kind`` or ``ops/database`` would not hold it. ``OpsRunCoordinator`` is
the queued run coordinator that adds the missing tags when a run is submitted, before the queue reads them.
Configured in ``dagster.yaml``::

    run_coordinator:
      module: jobs.coordinator
      class: OpsRunCoordinator
"""

from collections.abc import Iterable, Mapping

from dagster import AssetKey
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

from schedules.backups import BACKUP_PRIORITY

# The asset's kind of work, heaviest first: a run that holds several is limited as its heaviest.
KINDS = (("database_backup", "backup"), ("backup_replica", "replication"), ("restore_verification", "restore"),
         ("dr_drill", "drill"), ("verified_rpo", "rpo"), ("deploy_validation", "deploy_validation"),
         ("slow_query_report", "queries"), ("cache_warmup", "cache"), ("capacity_report", "capacity"),
         ("capacity_metrics", "capacity"))
DATABASE_DIMENSION_TAG = "dagster/partition/database"


def ops_tags(asset_keys: Iterable[AssetKey] | None, tags: Mapping[str, str]) -> dict[str, str]:
    """The ``ops/*`` tags (and a backup's priority) a run should carry and does not yet: never overrides."""
    heads = {key.path[0] for key in asset_keys or ()}
    wanted: dict[str, str] = {}
    kind = next((kind for head, kind in KINDS if head in heads), None)
    if kind:
        wanted["ops/kind"] = kind
        if kind == "backup":
            wanted["dagster/priority"] = BACKUP_PRIORITY  # a backup's window closes; a backfill's does not
    if DATABASE_DIMENSION_TAG in tags:
        wanted["ops/database"] = tags[DATABASE_DIMENSION_TAG]
    return {k: v for k, v in wanted.items() if k not in tags}


class OpsRunCoordinator(QueuedRunCoordinator):
    """The queued run coordinator (same settings), adding the ``ops/*`` tags a run launched by hand lacks."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        missing = ops_tags(run.asset_selection, run.tags)
        if missing:
            self._instance.add_run_tags(run.run_id, missing)
            run = run.with_tags({**run.tags, **missing})
            context = context._replace(dagster_run=run)
        return super().submit_run(context)
