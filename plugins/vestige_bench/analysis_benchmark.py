"""``vestige bench analyze``: end-to-end analysis throughput, and what the queue costs per image.

One fresh SQLite workspace of N generated JPEGs is analysed by the installed
CPU detectors several times over:

- **in-process**: the same task functions a worker runs, called in this
  process, with no broker: the baseline;
- **embedded** and **redis**, each with one worker process (``--concurrency
  1``), so that the difference from the baseline is the queue's overhead
  (messages, polling, task bookkeeping, process hand-off), and with one worker
  process per CPU for throughput.

Queue overhead per image = (wall time − time spent inside the tasks) / N,
where a task's time runs from its claim to its commit (``started_at`` to
``finished_at``), so it holds decoding, the detector and the database writes,
and everything outside it is the queue's: sending messages, polling, the
hand-off to a worker process, waiting for the result. With one worker process
tasks run one after another, so this difference is exact; it is compared with
the detectors' own time per image (the sum of the verdicts' ``runtime_ms``).
Worker start-up is not timed: each worker is started, waited for, then given
the analysis (but loading detectors in a fresh process happens in its first
task, so it counts as task time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from vestige_bench.benchmarks import _machine, synthetic_jpegs


def _redis_reachable(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def _start_worker(env: dict[str, str], concurrency: int, log: Path) -> subprocess.Popen:
    from vestige.core.config import load_config
    from vestige.jobs.heartbeat import live_workers

    command = [str(Path(sys.executable).with_name("vestige")), "worker", "--concurrency", str(concurrency),
               "--loglevel", "WARNING"]
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    config = load_config(environ={**os.environ, **env})
    deadline = time.monotonic() + 120
    while not any(w["pid"] == proc.pid for w in live_workers(config)):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the benchmark's worker did not start; see {log}")
        time.sleep(0.1)
    return proc


def _stop_worker(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _analyse(env: dict[str, str], detectors: list[str], mode: str) -> dict[str, float]:
    """Request an analysis of BENCH-1 and run it (``mode``: in-process or queue); seconds and detector time."""
    from vestige.analysis.analyses import request_analysis, tasks_of
    from vestige.core.config import load_config
    from vestige.core.plugins import get_plugin_manager, select_detectors
    from vestige.core.workspace import Workspace
    from vestige.db.models import AnalysisTask, Verdict
    from vestige.evidence.cases import get_case
    from vestige.jobs.celery_app import create_celery_app
    from vestige.jobs.dispatch import enqueue_tasks, run_in_process, wait_for_analysis

    config = load_config(environ={**os.environ, **env})
    workspace = Workspace.open(config)
    pm = get_plugin_manager(config.plugins.allow)
    chosen = select_detectors(pm, detectors)
    app = create_celery_app(config) if mode == "queue" else None
    with workspace.db.session() as session:
        analysis = request_analysis(workspace, session, get_case(session, "BENCH-1"), chosen, pm=pm, actor="bench")
        tasks = tasks_of(session, analysis)
    began, began_wall = time.perf_counter(), time.time()
    enqueue_seconds = 0.0
    if app is None:
        run_in_process(workspace, analysis.id)
    else:
        enqueue_tasks(app, tasks)
        enqueue_seconds = time.perf_counter() - began
        wait_for_analysis(workspace, analysis.id, poll_s=0.05)
    seconds = time.perf_counter() - began
    with workspace.db.session() as session:
        detector_ms = session.execute(
            sa.select(sa.func.sum(Verdict.runtime_ms)).where(Verdict.analysis_id == analysis.id)).scalar_one() or 0.0
        spans = session.execute(sa.select(AnalysisTask.started_at, AnalysisTask.finished_at)
                                .where(AnalysisTask.analysis_id == analysis.id)).all()
    workspace.close()
    spans.sort()
    task_seconds = sum((end - start).total_seconds() for start, end in spans)
    gaps = [(later[0] - earlier[1]).total_seconds() for earlier, later in zip(spans, spans[1:])]
    return {"seconds": seconds, "detector_ms": float(detector_ms), "tasks": len(tasks), "task_seconds": task_seconds,
            "enqueue_seconds": enqueue_seconds, "first_task_after_seconds": spans[0][0].timestamp() - began_wall,
            "mean_gap_seconds": sum(gaps) / len(gaps) if gaps else 0.0}


def run_analysis_benchmark(count: int = 1000, size: int = 256, redis_url: str = "redis://127.0.0.1:6379/0",
                           workers: int | None = None) -> dict[str, Any]:
    """Analyse ``count`` generated JPEGs in-process, on the embedded broker and on Redis; see the module docstring."""
    from vestige.core.config import load_config
    from vestige.core.plugins import get_detectors, get_plugin_manager
    from vestige.core.workspace import init_workspace
    from vestige.evidence.cases import create_case
    from vestige.evidence.ingest import Acquisition, Ingester

    workers = workers or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="vestige-bench-") as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        synthetic_jpegs(root / "images", count, size)
        env = {"VESTIGE_DATA_DIR": str(root / "data"), "VESTIGE_DATABASE__URL": "", "VESTIGE_JOBS__BROKER_URL": ""}
        config = load_config(environ={**os.environ, **env})
        workspace, _, _ = init_workspace(config)
        with workspace.db.session() as session:
            case = create_case(session, reference="BENCH-1", title="analysis benchmark", actor="bench")
            Ingester(workspace, session, case, Acquisition(source="bench", actor="bench")).ingest_paths([root / "images"])
        detectors = [d.name for d in get_detectors(get_plugin_manager(config.plugins.allow)).values() if d.device == "cpu"]
        workspace.close()

        brokers = {"embedded": {}}
        if _redis_reachable(redis_url):
            brokers["redis"] = {"VESTIGE_JOBS__BROKER_URL": redis_url,
                                "VESTIGE_JOBS__KEY_PREFIX": f"vestige-bench-{uuid.uuid4().hex[:8]}:"}
        runs: dict[str, dict[str, float]] = {"in-process": _analyse(env, detectors, "in-process")}
        for name, overrides in brokers.items():
            for concurrency in sorted({1, workers}):
                run_env = {**env, **overrides}
                proc = _start_worker(run_env, concurrency, root / f"worker-{name}-{concurrency}.log")
                try:
                    runs[f"{name}, {concurrency} worker process{'es' if concurrency > 1 else ''}"] = _analyse(
                        run_env, detectors, "queue")
                finally:
                    _stop_worker(proc)
    return _result(count, size, detectors, runs)


def _result(count: int, size: int, detectors: list[str], runs: dict[str, dict[str, float]]) -> dict[str, Any]:
    table = {}
    for name, run in runs.items():
        detector_ms = run["detector_ms"] / count
        row = {"seconds": round(run["seconds"], 2), "images_per_second": round(count / run["seconds"], 1),
               "tasks": int(run["tasks"]), "detector_ms_per_image": round(detector_ms, 3),
               "task_ms_per_image": round(run["task_seconds"] * 1000 / count, 3)}
        if name == "in-process" or name.endswith(" 1 worker process"):  # tasks ran one after another
            overhead_ms = (run["seconds"] - run["task_seconds"]) * 1000 / count
            row["queue_overhead_ms_per_image"] = round(overhead_ms, 3)
            row["queue_overhead_vs_detector_time"] = round(overhead_ms / detector_ms, 4) if detector_ms else None
            # The parts: once per analysis (sending the messages, the first hand-off) and once per task.
            row["enqueue_seconds"] = round(run["enqueue_seconds"], 3)
            row["first_task_started_after_seconds"] = round(run["first_task_after_seconds"], 3)
            row["between_tasks_ms"] = round(run["mean_gap_seconds"] * 1000, 1)
        table[name] = row
    return {
        "benchmark": "analyze",
        "command": f"vestige bench analyze --n {count} --size {size}",
        "images": count,
        "size": size,
        "detectors": detectors,
        "runs": table,
        "database": "sqlite",
        "machine": _machine(),
    }
