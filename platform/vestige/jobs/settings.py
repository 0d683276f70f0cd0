"""Celery's settings, all derived from Vestige's configuration ([jobs]).

Queues and routes are declared here and nowhere else: the device a detector
prefers picks the task name (see :data:`TASK_BY_DEVICE`), and the routes below
map task names to queues. Call sites never name a queue.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from kombu import Exchange, Queue

from vestige.core.config import Config
from vestige.core.errors import ConfigError
from vestige.jobs.embedded_broker import TRANSPORT, embedded_broker_url

#: One task per device, so that routing stays a table of task names.
TASK_BY_DEVICE = {"gpu": "vestige.analysis.run_chunk.gpu", "cpu": "vestige.analysis.run_chunk.cpu"}
DEVICES = tuple(TASK_BY_DEVICE)


def queue_for_device(device: str, served: Collection[str] = ()) -> str:
    """The queue for a detector that declares ``device``.

    ``gpu`` (prefers a GPU, runs on the CPU too) goes to the ``gpu`` queue,
    unless live workers are known (``served``: the queues they consume) and
    none consumes it: then to ``cpu``, so it runs on the CPU instead of
    waiting for a GPU worker that is not there. Everything else goes to ``cpu``.
    """
    if device != "gpu":
        return "cpu"
    return "gpu" if not served or "gpu" in served else "cpu"


def uses_embedded_broker(config: Config) -> bool:
    return not config.jobs.broker_url


def celery_settings(config: Config) -> dict[str, Any]:
    """The Celery configuration for ``config``: broker, queues, routes, reliability."""
    jobs = config.jobs
    missing = [q for q in DEVICES if q not in jobs.queues]
    if missing:
        raise ConfigError(f"configuration key jobs.queues must include {' and '.join(missing)}, which detectors are routed to")
    settings: dict[str, Any] = {
        "task_queues": [Queue(name, Exchange(name), routing_key=name) for name in jobs.queues],
        "task_default_queue": "cpu",
        "task_routes": {name: {"queue": device} for device, name in TASK_BY_DEVICE.items()},
        "task_annotations": {name: {"max_retries": jobs.max_retries} for name in TASK_BY_DEVICE.values()},
        # A task is acknowledged once it is done, and handed back if its worker
        # process dies: results are idempotent, so running twice is harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Tasks are long (a whole chunk of images): don't hoard them.
        "worker_prefetch_multiplier": 1,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }
    if uses_embedded_broker(config):
        settings["broker_url"] = embedded_broker_url(config.data_dir / "broker.db")
        settings["broker_transport"] = TRANSPORT
        # Remote control needs fanout exchanges, which this transport lacks.
        settings["worker_enable_remote_control"] = False
    else:
        settings["broker_url"] = jobs.broker_url
        options: dict[str, Any] = {"visibility_timeout": jobs.visibility_timeout}
        if jobs.key_prefix:
            options["global_keyprefix"] = jobs.key_prefix
        if jobs.broker_url.startswith(("redis://", "rediss://")):
            # Check for unacknowledged tasks of lost workers often enough to
            # honour a short visibility timeout.
            options["unacked_restore_interval"] = max(1, min(60, jobs.visibility_timeout // 2))
            options["unacked_restore_throttle"] = 1
            # A worker killed during a sweep leaves the sweep's lock behind;
            # kombu's default (300 s) would stop every other worker restoring
            # tasks for five minutes. A sweep takes milliseconds.
            options["unacked_mutex_expire"] = max(5, min(300, jobs.visibility_timeout))
            settings["broker_transport_options"] = options
    if jobs.result_backend:
        settings["result_backend"] = jobs.result_backend
    return settings
