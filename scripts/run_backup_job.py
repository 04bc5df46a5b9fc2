"""Run the main job (``backup_job``) once for the latest finished window of every database.

This is what the README's first command ends with. Runs are recorded in ``$DAGSTER_HOME`` so
they appear in the UI afterwards (``dagster dev -w workspace.yaml``).
"""

import sys
from datetime import UTC, datetime

from dagster import DagsterInstance

from assets.partitions import backup_partition_key, last_window_key
from ops_project.backups.catalog import list_backups
from ops_project.backups.layout import backup_prefix
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import defs


def main() -> int:
    cfg = load_config()
    window = last_window_key(cfg, datetime.now(UTC))
    job = defs.get_job_def("backup_job")
    instance = DagsterInstance.get()
    ok = True
    for db in cfg.databases:
        result = job.execute_in_process(
            partition_key=backup_partition_key(db.name, window), instance=instance,
            tags={"ops/kind": "backup", "ops/database": db.name}, raise_on_error=False)
        print(f"backup_job {db.name} window {window}: {'SUCCESS' if result.success else 'FAILED'} "
              f"(run {result.run_id})")
        ok &= result.success
    print("\nBackups now in each region:")
    clients = Clients(cfg)
    for region in cfg.regions:
        store = clients.store(region)
        for entry in list_backups(store):
            if entry.complete and entry.manifest.partition_key == window:
                print(f"  {region.name:<12} {entry.database:<10} {entry.backup_id}  "
                      f"{store.describe(backup_prefix(entry.database, entry.backup_id))}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
