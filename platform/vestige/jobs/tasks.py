"""Celery tasks: take an ID, call a plain function, let it write the result.

Task names are explicit and stable (they are routing keys, see
:mod:`vestige.jobs.settings`). Tasks are acknowledged late and handed back if
their worker dies; the work is idempotent. Errors a user must fix are never
retried; anything else is retried up to ``jobs.max_retries`` times, then the
task's verdicts record the error so the analysis can complete.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from vestige.core.errors import VestigeError
from vestige.core.logs import log_context
from vestige.jobs.execution import fail_analysis_task, run_analysis_task
from vestige.jobs.settings import TASK_BY_DEVICE
from vestige.jobs.worker_process import process_state

#: Retrying cannot fix these: a missing analysis, a bad configuration, a missing plugin.
NEVER_RETRIED: tuple[type[BaseException], ...] = (VestigeError,)


class AnalysisChunkTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (Exception,)
    dont_autoretry_for = NEVER_RETRIED
    retry_backoff = 2
    retry_backoff_max = 60

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        state = process_state(self.app.vestige_config)
        fail_analysis_task(state.workspace, int(args[0]), f"the task failed: {type(exc).__name__}: {exc}",
                           worker=self.request.hostname or "worker")


def _run_chunk(task: Task, analysis_task_id: int) -> dict[str, Any]:
    state = process_state(task.app.vestige_config)
    with log_context(task=int(analysis_task_id), celery_task=task.request.id):
        outcome = run_analysis_task(state.workspace, int(analysis_task_id), detectors=state.detector,
                                    worker=task.request.hostname or "worker")
    return {"status": outcome.status, "images": outcome.images}


@shared_task(base=AnalysisChunkTask, bind=True, name=TASK_BY_DEVICE["cpu"])
def run_chunk_cpu(self: Task, analysis_task_id: int) -> dict[str, Any]:
    """Run one analysis task whose detector prefers the CPU."""
    return _run_chunk(self, analysis_task_id)


@shared_task(base=AnalysisChunkTask, bind=True, name=TASK_BY_DEVICE["gpu"])
def run_chunk_gpu(self: Task, analysis_task_id: int) -> dict[str, Any]:
    """Run one analysis task whose detector prefers a GPU."""
    return _run_chunk(self, analysis_task_id)
