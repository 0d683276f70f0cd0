"""Sending an analysis's tasks to the workers, running them here instead, and waiting.

Each task message carries only the task's ID; its Celery task name comes
from the queue (device) the task was routed to, and configuration maps names
to queues. On the embedded broker a starting worker re-queues tasks that a
lost worker had taken (that broker cannot hand them back itself).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from celery import Celery

from vestige.analysis.analyses import get_analysis, tasks_of
from vestige.core.config import Config
from vestige.core.workspace import Workspace
from vestige.db.models import Analysis, AnalysisTask
from vestige.jobs.embedded_broker import forget_delivered_messages, pending_message_ids
from vestige.jobs.execution import FINISHED, run_analysis_task
from vestige.jobs.heartbeat import live_workers
from vestige.jobs.settings import TASK_BY_DEVICE, uses_embedded_broker
from vestige.jobs.worker_process import ProcessState

_MESSAGE_ID = re.compile(r"^vestige-task-(\d+)-")

Progress = Callable[[int, int], None]


def message_id(task_id: int) -> str:
    """A Celery task id that names the analysis task it carries."""
    return f"vestige-task-{task_id}-{uuid.uuid4().hex[:12]}"


def enqueue_tasks(app: Celery, tasks: Iterable[AnalysisTask]) -> int:
    """Send one message per task; returns how many were sent."""
    sent = 0
    for task in tasks:
        app.send_task(TASK_BY_DEVICE[task.queue], args=[task.id], task_id=message_id(task.id))
        sent += 1
    return sent


def workers_for(config: Config, queues: Iterable[str]) -> list[dict]:
    """Live local workers (embedded default) that together consume every one of ``queues``."""
    workers = live_workers(config)
    served = {q for w in workers for q in w.get("queues", [])}
    return workers if set(queues) <= served else []


def requeue_lost_tasks(app: Celery, workspace: Workspace) -> int:
    """Embedded broker: send again the unfinished tasks that no live worker holds and no message carries."""
    config = workspace.config
    if not uses_embedded_broker(config):
        return 0
    broker = config.data_dir / "broker.db"
    waiting = {int(m.group(1)) for m in map(_MESSAGE_ID.match, pending_message_ids(broker)) if m}
    forget_delivered_messages(broker)
    alive = {w["nodename"] for w in live_workers(config)}
    with workspace.db.session() as session:
        tasks = session.execute(
            sa.select(AnalysisTask).join(Analysis, Analysis.id == AnalysisTask.analysis_id)
            .where(Analysis.finished_at.is_(None), AnalysisTask.status.notin_(FINISHED))
            .order_by(AnalysisTask.id)
        ).scalars().all()
        lost = [t for t in tasks if t.id not in waiting and not (t.status == "running" and t.worker in alive)]
    return enqueue_tasks(app, lost)


def run_in_process(workspace: Workspace, analysis_id: int, *, progress: Progress | None = None,
                   worker: str = "in-process") -> None:
    """Run every unfinished task of the analysis in this process, in order."""
    state = ProcessState(workspace.config, workspace=workspace)
    with workspace.db.session() as session:
        task_ids = [t.id for t in tasks_of(session, get_analysis(session, analysis_id)) if t.status not in FINISHED]
    for task_id in task_ids:
        run_analysis_task(workspace, task_id, detectors=state.detector, worker=worker)
        if progress:
            with workspace.db.session() as session:
                analysis = get_analysis(session, analysis_id)
                progress(analysis.progress_done, analysis.progress_total)


def wait_for_analysis(workspace: Workspace, analysis_id: int, *, progress: Progress | None = None,
                      poll_s: float = 0.25, timeout_s: float | None = None) -> Analysis:
    """Poll until the analysis is finished; returns it. ``timeout_s`` bounds the wait."""
    began = time.monotonic()
    last = -1
    while True:
        with workspace.db.session() as session:
            analysis = get_analysis(session, analysis_id)
        if progress and analysis.progress_done != last:
            last = analysis.progress_done
            progress(analysis.progress_done, analysis.progress_total)
        if analysis.finished_at is not None:
            return analysis
        if timeout_s is not None and time.monotonic() - began > timeout_s:
            return analysis
        time.sleep(poll_s)
