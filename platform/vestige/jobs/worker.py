"""``vestige worker``: a Celery worker consuming Vestige's queues."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from celery.signals import setup_logging, worker_ready

from vestige.core.config import Config
from vestige.core.errors import ConfigError
from vestige.core.logs import configure_logging
from vestige.core.workspace import Workspace
from vestige.jobs.celery_app import create_celery_app
from vestige.jobs.dispatch import enqueue_tasks, requeue_lost_tasks
from vestige.jobs.heartbeat import Heartbeat
from vestige.jobs.recovery import DatabaseHeartbeat


def worker_nodename() -> str:
    """Unique per process, so heartbeats and claimed tasks name exactly one worker."""
    return f"vestige-{os.getpid()}@{socket.gethostname()}"


def start_worker(config: Config, *, queues: Sequence[str], concurrency: int | None, loglevel: str = "INFO",
                 pool: str = "prefork") -> None:
    """Run a worker until it is stopped; tasks lost by a previous worker are queued again first."""
    unknown = sorted(set(queues) - set(config.jobs.queues))
    if unknown:
        raise ConfigError(
            f"queue {', '.join(unknown)} is not declared in jobs.queues ({', '.join(config.jobs.queues)})"
        )
    app = create_celery_app(config)
    nodename = worker_nodename()
    # Vestige's format and context for every line, Celery's own included (a receiver here stops Celery
    # from installing its handlers); each task binds its task and analysis ids (vestige.jobs.tasks).
    configure_logging(loglevel, config.logging.format, also=("celery",))
    setup_logging.connect(lambda **_: configure_logging(loglevel, config.logging.format, also=("celery",)),
                          weak=False)
    workspace = Workspace.open(config)
    try:
        requeued = requeue_lost_tasks(app, workspace)
    finally:
        workspace.close()  # children open their own connections after the fork
    if requeued:
        print(f"re-queued {requeued} task(s) left unfinished by a lost worker", flush=True)
    heartbeat = Heartbeat(config, nodename, list(queues))
    # In the database too, whatever the broker: any live worker queues again the tasks of a lost one.
    watch = DatabaseHeartbeat(config, nodename, os.getpid(), list(queues), send=lambda tasks: enqueue_tasks(app, tasks))
    # Beat from the moment the worker consumes, not before: a command that
    # sees the heartbeat may count on its tasks being taken at once.
    worker_ready.connect(lambda **_: (heartbeat.start(), watch.start()), weak=False)
    argv = ["worker", "--queues", ",".join(queues), "--hostname", nodename, "--loglevel", loglevel, "--pool", pool,
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    try:
        app.worker_main(argv)
    finally:
        watch.stop()
        heartbeat.stop()
