"""Real worker processes: ``vestige worker`` as a subprocess, on the embedded broker and on Redis.

The database is this test's own (SQLite, or a PostgreSQL schema under
``make test-postgres``). Redis tests use a key prefix of their own, so
parallel runs never see each other's queues, and skip when Redis is not
reachable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from slowplugin import slow_site, with_slow  # noqa: F401  (fixtures)

from vestige.analysis.analyses import latest_analysis
from vestige.core.config import load_config
from vestige.core.workspace import Workspace
from vestige.db.models import CustodyEvent, Verdict
from vestige.evidence.cases import get_case
from vestige.jobs.dispatch import wait_for_analysis
from vestige.jobs.heartbeat import live_workers

ROOT = Path(__file__).resolve().parents[1]
VESTIGE = Path(sys.executable).with_name("vestige")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own on the local Redis, deleted afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({exc}); start it to run the Redis worker tests")
    prefix = f"vestige-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


@pytest.fixture(params=["embedded", "redis"])
def broker(request, env):
    """Configure ``env`` for the embedded broker or for Redis (with a short visibility timeout)."""
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        env.update({"VESTIGE_JOBS__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
                    "VESTIGE_JOBS__KEY_PREFIX": prefix, "VESTIGE_JOBS__VISIBILITY_TIMEOUT": "2"})
    return request.param


@pytest.fixture
def lab(vestige, make_photo, env, with_slow, tmp_path):
    """A case of eight images, the slow plugin installed, and a way to start workers."""
    env.update({"VESTIGE_PLUGINS": "slowtest,perturb", "VESTIGE_JOBS__IMAGES_PER_TASK": "2",
                "PYTHONPATH": str(with_slow), "VESTIGE_CONFIG": str(ROOT / "config.toml")})
    assert vestige("init").exit_code == 0
    assert vestige("case new --ref LAB-9 --title t").exit_code == 0
    files = [make_photo(f"p{i}.jpg", seed=i, size=48) for i in range(8)]
    assert vestige("ingest", "LAB-9", *files, "--by", "A. Examiner").exit_code == 0
    workers: list[subprocess.Popen] = []

    def start_worker(*args: str) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(workers)}.log", "w")
        proc = subprocess.Popen([str(VESTIGE), "worker", *args], cwd=tmp_path, env={**os.environ, **env},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        workers.append(proc)
        config = load_config(ROOT / "config.toml", environ=env)
        deadline = time.monotonic() + 60
        while not any(w["pid"] == proc.pid for w in live_workers(config)):
            assert proc.poll() is None, (tmp_path / f"worker-{len(workers) - 1}.log").read_text()
            assert time.monotonic() < deadline, "the worker did not start within 60 s"
            time.sleep(0.2)
        return proc

    yield start_worker
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _workspace(env) -> Workspace:
    return Workspace.open(load_config(ROOT / "config.toml", environ=env))


def test_a_worker_killed_mid_analysis_leaves_every_verdict_exactly_once_after_a_new_one_starts(vestige, lab, env, broker):
    env["VESTIGE_TEST_SLOW_SECONDS"] = "0.4"
    first = lab("--concurrency", "2")
    queued = vestige("analyze LAB-9 --detectors slow-test,raising-test")  # 8 tasks of 2 images
    assert queued.exit_code == 0 and "queued on" in queued.stdout, queued.stderr
    ws = _workspace(env)
    try:
        with ws.db.session() as session:
            analysis_id = latest_analysis(session, get_case(session, "LAB-9")).id
        deadline = time.monotonic() + 60
        while wait_for_analysis(ws, analysis_id, timeout_s=0).progress_done < 2:
            assert time.monotonic() < deadline, "the first worker made no progress"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # main process and its pool, mid-analysis
        first.wait()
        assert wait_for_analysis(ws, analysis_id, timeout_s=0).finished_at is None, "killed too late to test anything"

        lab("--concurrency", "2")
        analysis = wait_for_analysis(ws, analysis_id, timeout_s=180)
        assert analysis.finished_at is not None, "the analysis did not finish after a new worker started"
        with ws.db.session() as session:
            rows = session.execute(sa.select(Verdict).where(Verdict.analysis_id == analysis_id)).scalars().all()
            completed = session.execute(sa.select(CustodyEvent).where(CustodyEvent.action == "analysis.completed")).all()
    finally:
        ws.close()
    assert len(rows) == len({(r.image_id, r.detector) for r in rows}) == 16
    assert analysis.progress_done == analysis.progress_total == 16 and analysis.status == "done"
    assert len(completed) == 1
    slow = [r for r in rows if r.detector == "slow-test"]
    assert all(r.error is None for r in slow)
    assert all("always fails" in r.error for r in rows if r.detector == "raising-test")  # isolated, the others went on
    # The work ran in worker processes, each loading the detector once.
    assert os.getpid() not in {r.evidence["pid"] for r in slow} and {r.evidence["loads"] for r in slow} == {1}
