"""``continuous_replication_sensor``: the heartbeat of continuous protection.

Every ``continuous.marker_seconds`` it writes a marker row into each continuously protected database (so a
healthy replica advances even when nobody books, and restores to a moment can be proven), then reads how far
each replica has got. When that changes (a replica stalls, or recovers), and at least hourly, it runs
``continuous_rpo_job``, whose ``current_rpo`` check alerts and resolves through ops_check_failure_sensor. While a
replica is stalled, every tick fails, naming it: the sensor reads red in the UI until replication is back.
"""

import json
from datetime import UTC, datetime

from dagster import DefaultSensorStatus, RunRequest, SensorDefinition, SensorEvaluationContext, SensorResult, sensor

from ops_project.clients import Clients
from ops_project.common.errors import OpsError
from ops_project.config import OpsConfig
from ops_project.continuous.markers import write_all
from ops_project.continuous.replicas import summary, survey

EVERY_SECONDS = 3600  # a run at least this often, so the check's history has a point per hour


def build_continuous_sensor(cfg: OpsConfig, job) -> SensorDefinition:
    @sensor(name="continuous_replication_sensor", job=job, minimum_interval_seconds=cfg.continuous.marker_seconds,
            default_status=DefaultSensorStatus.RUNNING,
            description="Writes a marker row into each continuously protected database, reads how far each "
                        "Litestream replica has got, runs continuous_rpo_job when that changes (and hourly), and "
                        "fails its tick naming every replica that has stopped advancing.")
    def continuous_replication_sensor(context: SensorEvaluationContext):
        now = datetime.now(UTC)
        trouble = write_all(cfg, Clients(cfg).database_url, now)
        for problem in trouble:
            context.log.error(problem)
        found = [f for _, f in survey(cfg, now)]
        state = sorted(f"{f.database}|{f.region}|{f.status}|{f.over_objective}" for f in found if not f.ok)
        before = json.loads(context.cursor) if context.cursor else {}
        said = summary(found)
        context.log.info(said)
        if state != before.get("state") or now.timestamp() - before.get("run_at", 0) >= EVERY_SECONDS:
            return SensorResult(run_requests=[RunRequest(run_key=f"continuous|{now.isoformat()}",
                                                         tags={"ops/kind": "rpo"})],
                                cursor=json.dumps({"state": state, "run_at": now.timestamp()}))
        if state or trouble:
            raise OpsError("continuous replication: " + "; ".join([*trouble, *([said] if state else [])]))
        return SensorResult(skip_reason=said, cursor=context.cursor)

    return continuous_replication_sensor
