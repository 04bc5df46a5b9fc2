"""The single assembly point: configuration → assets, jobs, schedules, resources.

``workspace.yaml`` and ``[tool.dg]`` in pyproject.toml both point here.
"""


from dagster import Definitions

from assets.cache import build_cache_assets
from assets.capacity import build_capacity_assets
from assets.continuous import build_continuous_assets
from assets.drills import build_drill_assets
from assets.pipeline import build_backup_pipeline
from assets.queries import analysed_databases, build_query_assets
from assets.releases import build_release_assets
from assets.verification import build_verification_assets
from jobs.backups import build_backup_job, build_restore_verification_job, build_retention_job, build_rpo_job
from jobs.cache import build_cache_job
from jobs.capacity import build_capacity_jobs
from jobs.continuous import build_continuous_jobs
from jobs.drills import build_drill_job
from jobs.executors import build_executor
from jobs.queries import build_query_job
from jobs.releases import build_deploy_job
from ops_project.config import OpsConfig, load_config
from resources import build_resources
from schedules.backups import build_backup_schedule, build_retention_schedule, build_rpo_schedule
from schedules.cache import build_cache_schedule
from schedules.capacity import build_capacity_schedules
from schedules.continuous import build_continuous_schedules
from schedules.drills import build_drill_schedule
from schedules.queries import build_query_schedule
from sensors.alerts import build_alert_sensors
from sensors.cache import build_cache_sensor
from sensors.continuous import build_continuous_sensor
from sensors.fleet import build_discovery_sensor
from sensors.releases import build_release_sensor


def build_definitions(cfg: OpsConfig) -> Definitions:
    backup_job = build_backup_job(cfg)
    retention_job = build_retention_job(cfg)
    rpo_job = build_rpo_job(cfg)
    drill_job = build_drill_job(cfg)
    deploy_job = build_deploy_job() if cfg.releases else None
    release_sensor = build_release_sensor(cfg, deploy_job) if deploy_job else None
    query_job = build_query_job(cfg) if analysed_databases(cfg) else None
    cache_job = build_cache_job() if cfg.cache else None
    capacity_jobs = build_capacity_jobs(cfg)
    continuous_jobs = build_continuous_jobs(cfg)  # [continuous_rpo_job, point_in_time_restore_job, …] or []
    jobs = [backup_job, retention_job, build_restore_verification_job(cfg), rpo_job, drill_job,
            *([deploy_job] if deploy_job else []), *([query_job] if query_job else []),
            *([cache_job] if cache_job else []), *capacity_jobs, *continuous_jobs]
    return Definitions(
        assets=[build_backup_pipeline(cfg), *build_verification_assets(cfg), *build_drill_assets(cfg),
                *build_release_assets(cfg), *build_query_assets(cfg), *build_cache_assets(cfg),
                *build_capacity_assets(cfg), *build_continuous_assets(cfg)],
        jobs=jobs,
        schedules=[build_backup_schedule(cfg, backup_job), build_retention_schedule(cfg, retention_job),
                   build_rpo_schedule(cfg, rpo_job), build_drill_schedule(cfg, drill_job),
                   *([build_query_schedule(cfg, query_job)] if query_job else []),
                   *([build_cache_schedule(cfg, cache_job)] if cache_job else []),
                   *build_capacity_schedules(cfg, *capacity_jobs),
                   *build_continuous_schedules(cfg, continuous_jobs)],
        sensors=[*([release_sensor] if release_sensor else []), *build_alert_sensors(),
                 *([build_cache_sensor(cache_job)] if cache_job and cfg.releases else []),
                 *([build_discovery_sensor(cfg)] if cfg.discovers else []),
                 *([build_continuous_sensor(cfg, continuous_jobs[0])] if continuous_jobs else [])],
        resources=build_resources(cfg),
        # In-process by default: one process per run, not one more per step (each extra process cost 2.4 s of
        # start-up and shut-down around a 0.1 s step, bench/run_overhead.py); Celery or multiprocess when
        # ops.yaml says so (jobs/executors.py).
        executor=build_executor(cfg),
    )


defs = build_definitions(load_config())
