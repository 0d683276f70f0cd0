"""Analyses on Celery workers.

- :mod:`~vestige.jobs.settings`: every Celery setting, from ``[jobs]``;
  queues ``gpu`` and ``cpu``, routes by task name;
- :mod:`~vestige.jobs.celery_app`: the app;
- :mod:`~vestige.jobs.tasks`: the tasks (an ID in, a plain function called);
- :mod:`~vestige.jobs.execution`: the plain functions that run a task;
- :mod:`~vestige.jobs.worker_process`: per-process workspace and loaded detectors;
- :mod:`~vestige.jobs.dispatch`: enqueueing, running in-process, waiting;
- :mod:`~vestige.jobs.embedded_broker`, :mod:`~vestige.jobs.heartbeat`: the
  embedded default (no server);
- :mod:`~vestige.jobs.worker`: ``vestige worker``.
"""
