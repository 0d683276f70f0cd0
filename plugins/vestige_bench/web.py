"""``vestige bench web``: concurrent API clients on loopback against a real server, p95 latency and errors.

It builds a temporary SQLite workspace (cases, a user, a token, generated
images), starts the production server on 127.0.0.1 (gunicorn with threaded
workers, or werkzeug's threaded server when gunicorn is not installed), then
runs ``clients`` keep-alive clients for ``seconds``, spread over a few client
processes so the clients' own GIL does not inflate the numbers. Each client
alternates between the case list (``GET /api/v1/cases``) and one image's JSON
(``GET /api/v1/images/ID``, which also records an ``image.viewed`` custody
event: a database write per request). Only loopback is ever contacted, and
both the number of clients and the duration are bounded.
"""

from __future__ import annotations

import http.client
import importlib.util
import multiprocessing
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MAX_CLIENTS = 200
MAX_SECONDS = 600.0
CASES = 40
IMAGES = 24


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _seed(environ: dict[str, str], folder: Path) -> tuple[str, list[int]]:
    """A workspace with CASES cases (the user is on half of them), IMAGES images in one; returns a token and image ids."""
    from vestige.access.accounts import add_member, add_user, create_token
    from vestige.core.config import load_config
    from vestige.core.workspace import init_workspace
    from vestige.evidence.cases import create_case
    from vestige.evidence.ingest import Acquisition, Ingester
    from vestige_bench.benchmarks import synthetic_jpegs

    workspace, _, _ = init_workspace(load_config(environ=environ))
    images = folder / "images"
    images.mkdir()
    synthetic_jpegs(images, IMAGES, 128)
    with workspace.db.session() as session:
        user = add_user(session, username="bench", role="examiner", password=None)
        token = create_token(session, user, name="bench")
        cases = [create_case(session, reference=f"BENCH-{i:03d}", title=f"benchmark case {i}", actor="bench")
                 for i in range(CASES)]
        for case in cases[::2]:
            add_member(session, case, user, role="examiner", actor="bench")
        session.flush()
        summary = Ingester(workspace, session, cases[0], Acquisition(source="bench", actor="bench")).ingest_paths([images])
    workspace.close()
    return token, [row["image_id"] for row in summary.ingested]


def _start_server(environ: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **environ}
    if importlib.util.find_spec("gunicorn") is not None:
        # The production command of docs/web.md, with a keep-alive long enough for the run.
        command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "gthread",
                   "--threads", "8", "--reuse-port", "--bind", f"127.0.0.1:{port}", "--keep-alive", "30",
                   "vestige_web:create_app()"]
    else:
        command = [sys.executable, "-c", "from vestige.cli import main; main()", "serve", "--port", str(port)]
    with log.open("wb") as fh:
        process = subprocess.Popen(command, env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the web server did not start:\n" + log.read_text(errors="replace")[-2000:])


def _client_process(port: int, token: str, image_ids: list[int], clients: int, start: float, until: float, seed: int,
                    out: Any) -> None:
    """Run ``clients`` threads from ``start`` until ``until`` (time.time()); send back (endpoint, seconds, ok)
    tuples, failures, and each client's mean latency in ms."""
    results: list[tuple[str, float, bool]] = []
    failures: list[str] = []
    means: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}
        mine: list[tuple[str, float, bool]] = []
        turn = n % 2
        time.sleep(max(0.0, start - time.time()))
        while time.time() < until:
            kind = "case_list" if turn == 0 else "image_json"
            path = "/api/v1/cases" if turn == 0 else f"/api/v1/images/{rng.choice(image_ids)}"
            turn = 1 - turn
            began = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                ok = response.status == 200
                if not ok and len(failures) < 5:
                    failures.append(f"{response.status} {path}: {body[:300]!r}")
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append((kind, time.perf_counter() - began, ok))
        conn.close()
        with lock:
            results.extend(mine)
            if mine:
                means.append(1000 * sum(t for _, t, _ in mine) / len(mine))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((results, failures, means))


def _warm_up(port: int, token: str, image_ids: list[int], workers: int) -> None:
    """Until every worker has built its app: requests on fresh connections until a run of them answers at once."""
    headers = {"Authorization": f"Bearer {token}"}
    quick, deadline = 0, time.monotonic() + 120
    while quick < workers * 4 and time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        began = time.perf_counter()
        conn.request("GET", f"/api/v1/images/{image_ids[0]}", headers=headers)
        conn.getresponse().read()
        conn.close()
        quick = quick + 1 if time.perf_counter() - began < 0.5 else 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _stats(rows: list[tuple[str, float, bool]], seconds: float) -> dict[str, Any]:
    latencies = [t * 1000 for _, t, _ in rows]
    return {
        "requests": len(rows),
        "errors": sum(1 for _, _, ok in rows if not ok),
        "requests_per_s": round(len(rows) / seconds, 1),
        "p50_ms": round(_percentile(latencies, 0.50), 1),
        "p95_ms": round(_percentile(latencies, 0.95), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1) if latencies else None,
    }


def run_in_process_benchmark(blocks: int = 8, requests: int = 250) -> dict[str, Any]:
    """CPU per request in this process, no server, no network: the two requests of the load benchmark through
    Flask's test client on the same seeded workspace, ``time.process_time()`` around each; the median of
    ``blocks`` blocks of ``requests`` (after one warm-up block) per endpoint, in ms. What profiling a change to
    a page starts from: it does not move with the machine's load as the load benchmark does."""
    from vestige.core.config import load_config
    from vestige_bench.benchmarks import _machine
    from vestige_web import create_app

    with tempfile.TemporaryDirectory(prefix="vestige-bench-web-") as tmp:
        folder = Path(tmp)
        environ = {"VESTIGE_DATA_DIR": str(folder / "data"), "VESTIGE_WEB__SECRET_KEY": secrets.token_urlsafe(32),
                   "VESTIGE_DATABASE__URL": ""}
        token, image_ids = _seed(environ, folder)
        app = create_app({"VESTIGE": load_config(environ=environ)})
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        paths = {"case_list": lambda i: "/api/v1/cases", "image_json": lambda i: f"/api/v1/images/{image_ids[i % len(image_ids)]}"}
        medians: dict[str, list[float]] = {name: [] for name in paths}
        for block in range(blocks + 1):
            for name, path in paths.items():
                spent = []
                for i in range(requests):
                    began = time.process_time()
                    response = client.get(path(i), headers=headers)
                    spent.append(time.process_time() - began)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path(i)} answered {response.status_code}")
                if block:  # the first block warms caches up
                    medians[name].append(sum(spent) / len(spent) * 1000)
    return {
        "benchmark": "web-in-process",
        "blocks": blocks,
        "requests_per_block": requests,
        "cpu_ms_per_request": {name: {"median": round(_percentile(values, 0.5), 3), "min": round(min(values), 3),
                                      "max": round(max(values), 3)} for name, values in medians.items()},
        "machine": _machine(),
    }


def run_web_benchmark(clients: int = 50, seconds: float = 60.0, workers: int = 2) -> dict[str, Any]:
    """``clients`` concurrent API clients for ``seconds`` against a fresh server on loopback."""
    from vestige_bench.benchmarks import _machine

    clients, seconds = min(clients, MAX_CLIENTS), min(seconds, MAX_SECONDS)
    with tempfile.TemporaryDirectory(prefix="vestige-bench-web-") as tmp:
        folder = Path(tmp)
        environ = {"VESTIGE_DATA_DIR": str(folder / "data"), "VESTIGE_WEB__SECRET_KEY": secrets.token_urlsafe(32),
                   "VESTIGE_DATABASE__URL": ""}
        token, image_ids = _seed(environ, folder)
        port = _free_port()
        server = _start_server(environ, port, workers, folder / "server.log")
        try:
            _warm_up(port, token, image_ids, workers)
            processes = max(1, min(4, clients // 10))
            context = multiprocessing.get_context("fork")
            queue: Any = context.Queue()
            start = time.time() + 2  # every client process is up before the clock starts
            until = start + seconds
            shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
            procs = [context.Process(target=_client_process, args=(port, token, image_ids, share, start, until, i, queue))
                     for i, share in enumerate(shares)]
            for proc in procs:
                proc.start()
            rows: list[tuple[str, float, bool]] = []
            failures: list[str] = []
            means: list[float] = []
            for _ in procs:
                got, failed, client_means = queue.get(timeout=seconds + 120)
                rows.extend(got)
                failures.extend(failed)
                means.extend(client_means)
            for proc in procs:
                proc.join()
        finally:
            server.terminate()
            server.wait(timeout=30)
        log_lines = (folder / "server.log").read_text(errors="replace").splitlines()
        server_errors = [line for line in log_lines if "Error" in line][:5]
        server_kind = "gunicorn gthread" if importlib.util.find_spec("gunicorn") else "werkzeug threaded"
    return {
        "benchmark": "web",
        "clients": clients,
        "seconds": seconds,
        "server": (f"{server_kind}, {workers} workers x 8 threads, --reuse-port" if server_kind.startswith("gunicorn")
                   else server_kind),
        "database": "SQLite (embedded default)",
        "overall": _stats(rows, seconds),
        "case_list": _stats([r for r in rows if r[0] == "case_list"], seconds),
        "image_json": _stats([r for r in rows if r[0] == "image_json"], seconds),
        # Fairness: a server whose workers hold unequal shares of the keep-alive connections shows here.
        "client_mean_ms": {"min": round(min(means), 1), "median": round(_percentile(means, 0.5), 1),
                           "max": round(max(means), 1)} if means else None,
        "first_failures": failures[:5],
        "server_errors": server_errors,
        "machine": _machine(),
    }
