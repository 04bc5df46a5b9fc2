"""``tenant_discovery_sensor``: the discovered tenants become (and stop being) dynamic partitions.

Every minute the configuration's ``discover`` rules are run (``ops_project.common.fleet``). A new tenant is added
at once, so its partitions appear in the UI and the next backup window includes it; a tenant that has been
missing for ``remove_after_minutes`` is removed from the partitions (its backups stay in every region, where
retention keeps them by the same policy as everyone's: the last verified copy is never deleted). When a rule
cannot look, nothing of the fleet is removed. A file or database that cannot become a tenant fails the tick by
name, after the rest of the fleet has been brought up to date: the tick reads red until it is renamed or excluded.
"""

import json
import time
from dataclasses import dataclass

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from assets.partitions import DATABASES, record_joined
from ops_project.common import fleet
from ops_project.common.errors import OpsError
from ops_project.config import OpsConfig

MISSING_KEY = "ops/tenants/missing_since"  # instance key-value store: survives a failed tick, unlike a cursor
FOUND_BY_KEY = "ops/tenants/found_by"  # each discovered tenant's rule: its removal time, and "the rule found none"


@dataclass(frozen=True)
class Synced:
    added: list[str]
    removed: list[str]
    waiting: dict[str, float]  # missing, removed once their time is up
    held: list[str]  # missing while a rule could not look: kept
    found: fleet.Fleet

    def summary(self) -> str:
        parts = [f"{len(self.found.databases)} databases in the fleet"]
        if self.added:
            parts.append(f"added {', '.join(self.added)}")
        if self.removed:
            parts.append(f"removed {', '.join(self.removed)} (their backups are kept per retention)")
        if self.waiting:
            parts.append(f"missing, not yet removed: {', '.join(sorted(self.waiting))}")
        if self.held:
            parts.append(f"missing while a rule cannot look, kept: {', '.join(self.held)}")
        return "; ".join(parts)


def sync_tenants(cfg: OpsConfig, instance: DagsterInstance, *, remove: bool, now: float | None = None) -> Synced:
    """Bring the ``databases`` dynamic partitions up to the fleet found now: add new tenants; with ``remove``,
    remove the ones missing for long enough (the schedule only adds: removal is the sensor's, with its clock)."""
    now = time.time() if now is None else now
    stored = instance.run_storage.get_cursor_values({MISSING_KEY, FOUND_BY_KEY})
    missing = json.loads(stored.get(MISSING_KEY) or "{}")
    found_by = json.loads(stored.get(FOUND_BY_KEY) or "{}")
    found = fleet.guard_emptied(fleet.of(cfg), found_by)
    known = list(instance.get_dynamic_partitions(DATABASES))
    after = max(rule.remove_after_minutes for rule in cfg.discover)
    todo = fleet.changes(known, found, [db.name for db in cfg.databases], missing, now, after,
                         fleet.removal_minutes(cfg.discover, found_by))
    declared = {db.name for db in cfg.databases}
    if todo.add:
        instance.add_dynamic_partitions(DATABASES, todo.add)
    removed = []
    if remove:
        for name in todo.remove:
            instance.delete_dynamic_partition(DATABASES, name)
            removed.append(name)
    if todo.add or removed:
        record_joined(instance, [n for n in todo.add if n not in declared], now,
                      known=[n for n in [*known, *todo.add] if n not in removed])
    if remove and todo.missing_since != missing:  # the removal clock is kept on every tick, and only the sensor's
        instance.run_storage.set_cursor_values({MISSING_KEY: json.dumps(todo.missing_since, sort_keys=True)})
    members = {*known, *todo.add} - set(removed)
    now_found_by = {n: r for n, r in {**found_by, **found.origin}.items() if n in members}
    if now_found_by != found_by:
        instance.run_storage.set_cursor_values({FOUND_BY_KEY: json.dumps(now_found_by, sort_keys=True)})
    return Synced(todo.add, removed, todo.missing_since if remove else {}, todo.held, found)


def build_discovery_sensor(cfg: OpsConfig) -> SensorDefinition:
    @sensor(name="tenant_discovery_sensor", minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
            description="Tenant databases found by the configuration's discover rules become dynamic partitions "
                        "(added at once; removed after remove_after_minutes missing, their backups kept).")
    def tenant_discovery_sensor(context: SensorEvaluationContext):
        synced = sync_tenants(cfg, context.instance, remove=True)
        context.log.info(synced.summary())
        trouble = [*synced.found.unavailable, *synced.found.problems]
        if trouble:
            raise OpsError("tenant discovery: " + "; ".join(trouble) + f" (meanwhile: {synced.summary()})")
        return SkipReason(synced.summary())

    return tenant_discovery_sensor
