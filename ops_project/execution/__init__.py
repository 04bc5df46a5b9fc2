"""How runs execute their steps: in the run's own process, one process per step, or on Celery workers."""
