"""``cache_after_release_sensor``: a release that passed deploy validation → a ``cache_warmup`` run.

A pass is a materialisation of ``deploy_validation`` (a failed validation is an observation, never a
materialisation), so a new materialisation, and only that, starts a warm-up (several passes between two
ticks: one warm-up, after the newest); its run key is the release and the event's time, so a tick that runs
twice starts one warm-up.
"""

from dagster import AssetKey, DefaultSensorStatus, EventLogEntry, RunRequest, SensorEvaluationContext, asset_sensor

from assets.releases import DEPLOY_KEY


def build_cache_sensor(job):
    @asset_sensor(asset_key=AssetKey(DEPLOY_KEY.path), job=job, name="cache_after_release_sensor",
                  default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                  description="Each release that passes deploy validation is followed by a cache warm-up.")
    def cache_after_release_sensor(context: SensorEvaluationContext, event: EventLogEntry):
        release = event.dagster_event.partition if event.dagster_event else None
        return RunRequest(run_key=f"cache|release|{release}|{event.timestamp}",
                          tags={"ops/kind": "cache", "ops/trigger": "release", **({"ops/release": release}
                                                                                   if release else {})})

    return cache_after_release_sensor
