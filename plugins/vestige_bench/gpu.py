"""``vestige bench gpu``: the GPU path end to end in one command and one JSON (issue 23).

For the device asked (``cuda`` on a GPU host; ``cpu`` anywhere, with small
numbers, which is how the tests run it):

1. **detectors**: each detector end to end (decode + detector) and its
   network alone, by :func:`vestige_bench.throughput.run_throughput`, on
   ``n`` 32×32 PNGs sampled from two of the zoo's generators (a GAN and a
   diffusion model, half each) on that device;
2. **inversion**: the inversion verifier's batched optimisation, seconds per
   image per 1,000 steps at one batch size
   (:func:`vestige_inversion.evaluation.bench`);
3. **analysis**: one worker (``--concurrency 1``, both queues) draining
   an analysis of ``analysis_images`` of those PNGs with the chosen
   detectors, ingested into a fresh SQLite workspace: the wall time, the
   worker's time inside its tasks and images per second.

The result records the device's name, torch's version and the machine, so a
figure is never read without where it came from. docs/benchmarks.md gives
the command to run on the GPU host (after ``../shared/tools/gpu-pack``).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FORMAT = "vestige-gpu-bench/1"
#: The zoo generators the images come from: a GAN and a diffusion model, half each.
GENERATORS = ("dcgan-s0", "ddpm-ddim")
#: The detectors an analysis runs by default on a GPU host (all four that have shipped models).
DEFAULT_DETECTORS = ("fingerprint", "repmix", "manifpt", "metadata")

Progress = Callable[[str], None]


def zoo_pngs(n: int, device: str, seed: int = 23) -> list[tuple[str, bytes]]:
    """``n`` (name, PNG bytes) pairs sampled from :data:`GENERATORS` on ``device``."""
    from PIL import Image

    from vestige_zoo.registry import load_generator
    from vestige_zoo.sampling import sample_images

    out: list[tuple[str, bytes]] = []
    for k, name in enumerate(GENERATORS):
        count = n // len(GENERATORS) + (1 if k < n % len(GENERATORS) else 0)
        if not count:
            continue
        pixels, _ = sample_images(name, load_generator(name).to(device), count, seed, batch_size=1024, device=device)
        for i, picture in enumerate(pixels):
            buf = io.BytesIO()
            Image.fromarray(picture).save(buf, "PNG")
            out.append((f"{name}-{i:05d}.png", buf.getvalue()))
    return out


def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    import platform

    return f"{platform.machine()} CPU, {os.cpu_count()} cores"


def _drain(images: Sequence[tuple[str, bytes]], detectors: Sequence[str], say: Progress) -> dict[str, Any]:
    """One worker consuming both queues drains an analysis of ``images`` (see the module)."""
    from vestige.core.config import load_config
    from vestige.core.workspace import init_workspace
    from vestige.evidence.cases import create_case
    from vestige.evidence.ingest import Acquisition, Ingester
    from vestige_bench.analysis_benchmark import _analyse, _start_worker, _stop_worker

    with tempfile.TemporaryDirectory(prefix="vestige-bench-gpu-") as tmp:
        root = Path(tmp)
        folder = root / "images"
        folder.mkdir()
        for name, data in images:
            (folder / name).write_bytes(data)
        env = {"VESTIGE_DATA_DIR": str(root / "data"), "VESTIGE_DATABASE__URL": "", "VESTIGE_JOBS__BROKER_URL": ""}
        config = load_config(environ={**os.environ, **env})
        workspace, _, _ = init_workspace(config)
        began = time.perf_counter()
        with workspace.db.session() as session:
            case = create_case(session, reference="BENCH-1", title="GPU benchmark", actor="bench")
            Ingester(workspace, session, case, Acquisition(source="bench", actor="bench")).ingest_paths([folder])
        ingest_seconds = time.perf_counter() - began
        workspace.close()
        say(f"ingested {len(images)} images in {ingest_seconds:.1f} s; one worker drains the analysis")
        worker = _start_worker(env, 1, root / "worker.log")  # every queue of jobs.queues: gpu and cpu
        try:
            run = _analyse(env, list(detectors), "queue")
        finally:
            _stop_worker(worker)
    n = len(images)
    return {"images": n, "detectors": list(detectors), "ingest_seconds": round(ingest_seconds, 2),
            "wall_seconds": round(run["seconds"], 2), "worker_task_seconds": round(run["task_seconds"], 2),
            "images_per_second": round(n / run["seconds"], 1), "tasks": int(run["tasks"]),
            "detector_ms_per_image": round(run["detector_ms"] / n, 3)}


def run_gpu_benchmark(*, device: str, n: int, batch_size: int, detectors: Sequence[str], analysis_images: int,
                      inversion_batch: int, inversion_steps: int, precision: str = "fp32", max_tiles: int = 256,
                      decode_threads: int = 4, command: str = "", progress: Progress | None = None) -> dict[str, Any]:
    """Every part of the module docstring, as one JSON-ready dict."""
    import torch

    from vestige.analysis.detect import decode_threads_for
    from vestige.core.plugins import get_plugin_manager, select_detectors
    from vestige_bench.benchmarks import _machine
    from vestige_bench.throughput import run_throughput
    from vestige_inversion.evaluation import bench as inversion_bench

    say = progress or (lambda _: None)
    if device == "cuda" and not torch.cuda.is_available():
        from vestige.core.errors import InvalidInputError

        raise InvalidInputError("--device cuda, but torch sees no GPU on this machine; use --device cpu")
    say(f"sampling {max(n, analysis_images)} zoo images on {device}")
    images = zoo_pngs(max(n, analysis_images), device)
    pm = get_plugin_manager()
    results: dict[str, Any] = {}
    for detector in select_detectors(pm, list(detectors)):
        say(f"{detector.name}: {n} images end to end, batches of {batch_size}")
        chosen = precision if precision in getattr(detector, "precisions", ("fp32",)) else "fp32"
        row = run_throughput(detector, images[:n], batch_size=batch_size, device=device, precision=chosen,
                             max_tiles=max_tiles, decode_threads=decode_threads_for(32 * 32, decode_threads))
        results[detector.name] = {"precision": chosen, "images_per_second": row["images_per_second"],
                                  "seconds": row["seconds"], "labels": row["labels"],
                                  "model_sha256": row["model_sha256"]}
    say(f"inversion: batch {inversion_batch}, {inversion_steps} steps")
    inversion = inversion_bench([GENERATORS[0]], steps=inversion_steps, batches=[inversion_batch], device=device)
    analysis = _drain(images[:analysis_images], detectors, say)
    return {
        "format": FORMAT,
        "command": command,
        "device": device,
        "device_name": _device_name(device),
        "torch": torch.__version__,
        "n": n,
        "batch_size": batch_size,
        "decode_threads": decode_threads_for(32 * 32, decode_threads),
        "detectors": results,
        "inversion": {"generator": GENERATORS[0], **inversion["rows"][0]},
        "analysis": analysis,
        "machine": _machine(),
    }
