"""The executor every job uses, from ``execution`` in ops.yaml.

- ``in_process`` (the default): a run's steps in the run's own process. The backup pipeline is one step
  that fans its databases out over threads, so one process per run is all a machine needs.
- ``multiprocess``: Dagster's own, one process per step (``max_concurrent_steps`` at once).
- ``celery``: ``dagster-celery`` on an existing broker (RabbitMQ or Redis): each step is a Celery task on the
  ``execution.celery.queue`` queue, run by ``dagster-celery worker start -A dagster_celery.app -q <queue>``
  workers on any machine that has the code, the configuration and the instance's storage (PostgreSQL). Tasks
  are acknowledged only when they finish (``task_acks_late``) and given back when their worker dies
  (``task_reject_on_worker_lost``), one at a time per worker process: a killed worker's step is run again by
  another worker. The broker URL is a secret: an ``EnvVar`` of ``celery.broker_url_env``.
"""

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from ops_project.config import OpsConfig


def celery_settings(cfg: OpsConfig) -> dict:
    """The executor's (and the workers' ``-y`` file's) configuration: what both sides must agree on."""
    celery = cfg.execution.celery
    return {"broker": {"env": celery.broker_url_env}, "backend": celery.backend,
            "config_source": {"task_default_queue": celery.queue, "task_acks_late": True,
                              "task_reject_on_worker_lost": True, "worker_prefetch_multiplier": 1,
                              "broker_connection_retry_on_startup": True}}


def build_executor(cfg: OpsConfig) -> ExecutorDefinition:
    kind = cfg.execution.executor
    if kind == "multiprocess":
        return multiprocess_executor.configured({"max_concurrent": cfg.execution.max_concurrent_steps})
    if kind == "celery":
        from dagster_celery import celery_executor  # only where Celery is chosen

        return celery_executor.configured(celery_settings(cfg))
    return in_process_executor
