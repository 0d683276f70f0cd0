"""A killed worker's tasks are queued again within seconds, whatever the broker (issue 21, item 8).

Redis hands an unacknowledged task back only after ``jobs.visibility_timeout``
(an hour here, the default); the embedded broker never does. The surviving
worker sees the dead one's heartbeat go stale and queues its tasks again.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import pytest
import sqlalchemy as sa
from slowplugin import slow_site, with_slow  # noqa: F401  (fixtures)
from test_workers import _workspace, broker, lab, redis_prefix  # noqa: F401  (fixtures)

from vestige.analysis.analyses import latest_analysis
from vestige.db.models import AnalysisTask, Verdict
from vestige.evidence.cases import get_case
from vestige.jobs.dispatch import wait_for_analysis

pytestmark = pytest.mark.slow


def test_a_killed_workers_tasks_are_taken_over_by_a_live_worker_within_seconds(vestige, lab, env, broker):
    env.update({"VESTIGE_TEST_SLOW_SECONDS": "0.4", "VESTIGE_JOBS__VISIBILITY_TIMEOUT": "3600",
                "VESTIGE_JOBS__LOST_WORKER_SECONDS": "4"})
    doomed = lab("--concurrency", "1")
    lab("--concurrency", "1")
    assert vestige("analyze LAB-9 --detectors slow-test").exit_code == 0  # 4 tasks of 2 images
    ws = _workspace(env)
    try:
        with ws.db.session() as session:
            analysis_id = latest_analysis(session, get_case(session, "LAB-9")).id
        deadline = time.monotonic() + 60
        while True:  # kill it while it holds a task, or the test proves nothing
            with ws.db.session() as session:
                held = session.scalar(sa.select(sa.func.count()).select_from(AnalysisTask).where(
                    AnalysisTask.status == "running", AnalysisTask.worker.like(f"vestige-{doomed.pid}@%")))
            if held:
                break
            assert time.monotonic() < deadline, "the first worker never took a task"
            time.sleep(0.02)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
        killed_at = time.monotonic()
        analysis = wait_for_analysis(ws, analysis_id, timeout_s=60)
        assert analysis.finished_at is not None, "the lost worker's task was not taken over within a minute"
        assert time.monotonic() - killed_at < 60
        with ws.db.session() as session:
            rows = session.execute(sa.select(Verdict).where(Verdict.analysis_id == analysis_id)).scalars().all()
    finally:
        ws.close()
    assert len(rows) == len({(r.image_id, r.detector) for r in rows}) == 8 and all(r.error is None for r in rows)


def test_the_stall_sentence_names_a_worker_that_went_silent(workspace):
    from vestige.db.models import Analysis, WorkerHeartbeat, utcnow
    from vestige.evidence.cases import create_case
    from vestige.jobs.recovery import requeue_tasks_of_lost_workers, stall_reason

    with workspace.db.session() as session:
        case = create_case(session, reference="STALL-1", title="t", actor="tester")
        analysis = Analysis(case_id=case.id, requested_by="tester", detectors=["x"], options={}, progress_total=2)
        session.add(analysis)
        session.flush()
        session.add(AnalysisTask(analysis_id=analysis.id, detector="x", chunk=0, queue="cpu", image_ids=[1],
                                 status="running", worker="vestige-1@gone"))
        session.add(WorkerHeartbeat(nodename="vestige-1@gone", pid=1, queues=["cpu"],
                                    beat_at=utcnow() - dt.timedelta(minutes=5)))
        analysis_id = analysis.id
    sentence = stall_reason(workspace.db, workspace.config, analysis_id)
    assert "held by vestige-1@gone, which stopped sending heartbeats" in sentence
    sent = []
    assert requeue_tasks_of_lost_workers(workspace.db, workspace.config, lambda tasks: sent.extend(tasks) or len(tasks)) == 1
    assert requeue_tasks_of_lost_workers(workspace.db, workspace.config, lambda tasks: len(tasks)) == 0  # once only
    with workspace.db.session() as session:
        task = session.get(AnalysisTask, sent[0].id)
        assert (task.status, task.worker) == ("queued", None)


def test_heartbeats_of_workers_lost_over_a_day_ago_are_deleted(workspace):
    from vestige.db.models import WorkerHeartbeat, utcnow
    from vestige.jobs.recovery import KEEP_LOST_HEARTBEATS, prune_heartbeats

    with workspace.db.session() as session:
        session.add_all([
            WorkerHeartbeat(nodename="gone", pid=1, queues=["cpu"], beat_at=utcnow() - KEEP_LOST_HEARTBEATS - dt.timedelta(minutes=1)),
            WorkerHeartbeat(nodename="lost-recently", pid=2, queues=["cpu"], beat_at=utcnow() - dt.timedelta(hours=1)),
            WorkerHeartbeat(nodename="alive", pid=3, queues=["cpu"], beat_at=utcnow()),
        ])
    assert prune_heartbeats(workspace.db) == 1
    with workspace.db.session() as session:
        assert sorted(session.execute(sa.select(WorkerHeartbeat.nodename)).scalars()) == ["alive", "lost-recently"]
