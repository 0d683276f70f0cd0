"""Starting an analysis: one function for the command line and the web, which says where it runs.

:func:`start_analysis` picks the detectors that can run (a trainable one
without a model is skipped unless named), records the analysis and its tasks
(a custody event), commits, then hands the tasks on:

- to the broker, when workers can take them (any external broker; on the
  embedded broker, a live ``vestige worker`` serving every queue involved);
- otherwise to ``run_here(started)`` if the caller gives one (``vestige analyze
  --wait`` runs it in its own process, the web app in a background thread,
  so the embedded default works without a worker);
- otherwise to the broker anyway, where it waits for a worker (``where`` is
  ``"queued, no worker"`` so the caller can say how to start one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from vestige.analysis.analyses import request_analysis, tasks_of
from vestige.core.plugins import VestigePluginManager, select_detectors
from vestige.core.workspace import Workspace
from vestige.db.models import Analysis, AnalysisTask, Case
from vestige.models.artifacts import Registry, runnable

log = logging.getLogger(__name__)

#: Where :func:`start_analysis` sent the work.
WORKERS, HERE, WAITING = "workers", "here", "queued, no worker"


@dataclass
class Started:
    analysis: Analysis
    tasks: list[AnalysisTask]
    #: Detectors left out because they have no trained model (docs/models.md).
    skipped: list[str]
    #: :data:`WORKERS`, :data:`HERE` or :data:`WAITING`.
    where: str

    @property
    def queues(self) -> list[str]:
        return sorted({t.queue for t in self.tasks})


def workers_can_take(workspace: Workspace, queues: Sequence[str]) -> bool:
    """Whether the tasks of these queues will be taken by workers: always on an external broker, on the embedded
    one only while a live worker serves every queue."""
    from vestige.jobs.dispatch import workers_for
    from vestige.jobs.settings import uses_embedded_broker

    config = workspace.config
    return not uses_embedded_broker(config) or bool(workers_for(config, list(queues)))


def start_analysis(workspace: Workspace, session: Session, case: Case, pm: VestigePluginManager, names: Sequence[str],
                   *, actor: str, robustness: bool = False,
                   run_here: Callable[[Started], None] | None = None) -> Started:
    """Request an analysis of ``case`` with the detectors ``names`` (all runnable ones when empty) and start it."""
    from vestige.jobs.celery_app import create_celery_app
    from vestige.jobs.dispatch import enqueue_tasks

    named = [n for n in names if n]
    detectors, skipped = runnable(select_detectors(pm, named), Registry(session, workspace.store), named=bool(named))
    analysis = request_analysis(workspace, session, case, detectors, pm=pm, actor=actor, robustness=robustness)
    started = Started(analysis, tasks_of(session, analysis), skipped, WORKERS)
    session.commit()  # workers read the tasks from the database
    if not workers_can_take(workspace, started.queues):
        if run_here is not None:
            started.where = HERE
            log.info("analysis %d of case %s runs in this process: no worker serves %s", analysis.id,
                     case.reference, ", ".join(started.queues))
            run_here(started)
            return started
        started.where = WAITING
    enqueue_tasks(create_celery_app(workspace.config), started.tasks)
    log.info("analysis %d of case %s: %d task(s) queued on %s (%s)", analysis.id, case.reference, len(started.tasks),
             ", ".join(started.queues), started.where)
    return started
