"""Lost workers, whatever the broker: heartbeats in the database, and their running tasks queued again.

The broker's own hand-back is slow or absent: Redis redelivers an
unacknowledged task only after ``jobs.visibility_timeout`` (an hour by
default), and the embedded broker never does. So every worker writes a
heartbeat row every :data:`INTERVAL_S` seconds, and every few seconds looks
for tasks still ``running`` on a worker whose row is older than
``jobs.lost_worker_seconds``: each is set back to ``queued`` by a
conditional UPDATE (so exactly one worker re-queues it) and sent again. A
late redelivery by the broker then finds the task done and does nothing.
Tasks run in-process (``vestige analyze --wait``, the web server's thread)
have no heartbeat row and are never taken from them.
"""

from __future__ import annotations

import logging
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from vestige.core.config import Config
from vestige.db import Database, make_engine
from vestige.db.models import Analysis, AnalysisTask, WorkerHeartbeat, utcnow

log = logging.getLogger(__name__)

INTERVAL_S = 2.0


def _lost_before(config: Config) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=config.jobs.lost_worker_seconds)


def beat(db: Database, nodename: str, pid: int, queues: list[str]) -> None:
    """Insert or refresh this worker's heartbeat row."""
    with db.session() as session:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        now = utcnow()
        session.execute(insert(WorkerHeartbeat).values(nodename=nodename, pid=pid, queues=queues, beat_at=now)
                        .on_conflict_do_update(index_elements=["nodename"], set_={"beat_at": now, "queues": queues}))


#: Heartbeat rows older than this are deleted by the live workers: their tasks were re-queued long before
#: (after ``jobs.lost_worker_seconds``), and the row only told which worker was lost.
KEEP_LOST_HEARTBEATS = dt.timedelta(days=1)


def prune_heartbeats(db: Database) -> int:
    """Delete the heartbeats of workers lost more than :data:`KEEP_LOST_HEARTBEATS` ago; returns how many."""
    with db.session() as session:
        result = session.execute(sa.delete(WorkerHeartbeat)
                                 .where(WorkerHeartbeat.beat_at < utcnow() - KEEP_LOST_HEARTBEATS))
        return result.rowcount or 0


def forget(db: Database, nodename: str) -> None:
    with db.session() as session:
        session.execute(sa.delete(WorkerHeartbeat).where(WorkerHeartbeat.nodename == nodename))


def lost_workers(db: Database, config: Config) -> dict[str, dt.datetime]:
    """Workers whose heartbeat went stale, with their last beat."""
    with db.session() as session:
        rows = session.execute(sa.select(WorkerHeartbeat.nodename, WorkerHeartbeat.beat_at)
                               .where(WorkerHeartbeat.beat_at < _lost_before(config))).all()
    return {name: at for name, at in rows}


def requeue_tasks_of_lost_workers(db: Database, config: Config, send: Callable[[list[AnalysisTask]], int]) -> int:
    """Set the running tasks of lost workers back to queued (each exactly once) and send them; returns how many."""
    lost = lost_workers(db, config)
    if not lost:
        return 0
    taken: list[AnalysisTask] = []
    with db.session() as session:
        tasks = session.execute(
            sa.select(AnalysisTask).join(Analysis, Analysis.id == AnalysisTask.analysis_id)
            .where(Analysis.finished_at.is_(None), AnalysisTask.status == "running", AnalysisTask.worker.in_(list(lost)))
            .order_by(AnalysisTask.id)
        ).scalars().all()
        for task in tasks:
            moved = session.execute(
                sa.update(AnalysisTask).where(AnalysisTask.id == task.id, AnalysisTask.status == "running",
                                              AnalysisTask.worker == task.worker)
                .values(status="queued", worker=None).execution_options(synchronize_session=False)
            ).rowcount
            if moved:
                taken.append(task)
        session.commit()
        for task in taken:
            session.expunge(task)
    return send(taken) if taken else 0


#: ``AnalysisTask.worker`` of tasks run by a command or the web server itself, which send no heartbeat.
IN_PROCESS_WORKERS = ("in-process", "web-in-process")


def _live(session: Session, config: Config) -> list[Any]:
    return session.execute(sa.select(WorkerHeartbeat.nodename, WorkerHeartbeat.queues)
                           .where(WorkerHeartbeat.beat_at >= _lost_before(config))).all()


def live_queues(session: Session, config: Config) -> set[str]:
    """The queues that live workers (fresh heartbeats) consume; empty when none is running."""
    return {q for _, queues in _live(session, config) for q in queues}


def waiting_reason(session: Session, config: Config, analysis: Analysis) -> str | None:
    """Why an unfinished analysis cannot move, in one sentence, or ``None`` while something can run it.

    Something can run it when a command or the web server runs its tasks
    itself, or when live workers (fresh heartbeats) serve every queue its
    unfinished tasks wait on.
    """
    if analysis.finished_at is not None:
        return None
    tasks = session.execute(sa.select(AnalysisTask.queue, AnalysisTask.status, AnalysisTask.worker)
                            .where(AnalysisTask.analysis_id == analysis.id)).all()
    if any(worker in IN_PROCESS_WORKERS for _, _, worker in tasks):
        return None  # a command or the web server runs it itself, task after task
    needed = sorted({queue for queue, status, _ in tasks if status not in ("done", "failed")})
    live = _live(session, config)
    if not live:
        return (f"No worker is running, so analysis {analysis.id} waits in the queue: start one with "
                f"`vestige worker` (same configuration and data directory).")
    served = {q for _, queues in live for q in queues}
    missing = [q for q in needed if q not in served]
    if missing:
        return (f"No live worker serves queue {', '.join(missing)}, so analysis {analysis.id} waits: start "
                f"`vestige worker --queues {','.join(missing)}`.")
    return None


def stall_reason(db: Database, config: Config, analysis_id: int) -> str:
    """Why an analysis makes no progress, in one sentence, from the heartbeats and its tasks."""
    with db.session() as session:
        live = _live(session, config)
        running = session.execute(sa.select(AnalysisTask.worker).where(
            AnalysisTask.analysis_id == analysis_id, AnalysisTask.status == "running")).scalars().all()
        queued = session.scalar(sa.select(sa.func.count()).select_from(AnalysisTask).where(
            AnalysisTask.analysis_id == analysis_id, AnalysisTask.status == "queued"))
    alive = {name for name, _ in live}
    lost = sorted({w for w in running if w and w not in alive})
    if lost:
        return (f"{len(running)} task(s) are held by {', '.join(lost)}, which stopped sending heartbeats; a live "
                f"worker queues them again within {config.jobs.lost_worker_seconds} s of the last one")
    if not live:
        return f"no worker has sent a heartbeat in {config.jobs.lost_worker_seconds} s: start `vestige worker`"
    served = sorted({q for _, queues in live for q in queues})
    return (f"{queued} task(s) queued and {len(running)} running; live workers ({len(live)}) serve queues "
            f"{', '.join(served)}")


class DatabaseHeartbeat:
    """A worker's heartbeat row and its watch over lost workers, from a thread of the worker's main process.

    Its engine opens a connection per beat (no pool), so processes forked from
    the worker never inherit a database connection.
    """

    def __init__(self, config: Config, nodename: str, pid: int, queues: list[str],
                 send: Callable[[list[AnalysisTask]], int], log: Callable[[str], None] = print) -> None:
        self.config, self.nodename, self.pid, self.queues, self.send, self.log = config, nodename, pid, queues, send, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vestige-db-heartbeat", daemon=True)
        self._db: Database | None = None

    def _run(self) -> None:
        db = self._db = Database(make_engine(self.config.database_url, poolclass=NullPool))
        beats = 0
        while True:
            try:
                beat(db, self.nodename, self.pid, self.queues)
                if beats % 3 == 0:
                    requeued = requeue_tasks_of_lost_workers(db, self.config, self.send)
                    if requeued:
                        self.log(f"re-queued {requeued} task(s) of a lost worker")
                if beats % 100 == 0 and (pruned := prune_heartbeats(db)):
                    log.info("deleted %d heartbeat(s) of workers lost over a day ago", pruned)
            except Exception as exc:  # the database or broker is away for a moment: beat again later
                log.warning("heartbeat of %s failed; beating again in %s s", self.nodename, INTERVAL_S, exc_info=True)
                self.log(f"heartbeat: {type(exc).__name__}: {exc}")
            beats += 1
            if self._stop.wait(INTERVAL_S):
                break

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._db is not None:
            forget(self._db, self.nodename)
            self._db.dispose()
