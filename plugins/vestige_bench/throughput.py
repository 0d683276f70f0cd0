"""Inference throughput of one detector, from encoded image bytes to findings.

``vestige bench detector --detector NAME --dataset DIR|--images DIR --n 2048 --batch-size 256``
takes ``n`` encoded files (a dataset's clean test images, or the images of a
folder, repeated to reach ``n``), and times, after one warm-up batch:

- ``decode``: :func:`vestige.analysis.detect.make_input` on every file (validation,
  decoding, RGB conversion, metadata summary: what every detector receives),
  on ``decode_threads`` threads (one by default; a worker uses
  ``jobs.decode_threads``);
- ``detector``: :func:`vestige.analysis.detect.run_detector` on the decoded inputs, in
  batches of ``batch_size`` (the detector's own preprocessing and network);
- ``end_to_end``: both, which is what a worker does per chunk;
- ``network`` (when the detector offers ``network_throughput(batch_size=,
  n=, device=, precision=)``): the network alone on ready tensors.

A detector that offers lower precision lists it in ``precisions`` and reads
the ``precision`` attribute in ``load``; asking another detector for
``bf16`` is refused. The result records the machine (CPU count, torch
threads, load average: on a shared machine it moves the numbers).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vestige.analysis.detect import decode_in_threads, make_input, run_detector
from vestige.analysis.tiles import DEFAULT_MAX_TILES
from vestige.core.errors import InvalidInputError
from vestige.evidence.imagefile import IMAGE_SUFFIXES
from vestige.models.artifacts import attach
from vestige.models.datasets import Dataset
from vestige.plugin import Detector
from vestige.plugin.training import ArtifactFile, TrainableDetector

__all__ = ["encoded_images", "run_throughput"]

FORMAT = "vestige-detector-throughput/1"

Progress = Callable[[str], None]


def encoded_images(*, dataset: Dataset | None = None, folder: Path | None = None, n: int) -> list[tuple[str, bytes]]:
    """``n`` (name, bytes) pairs: a dataset's clean test images or a folder's images, cycled to reach ``n``."""
    if (dataset is None) == (folder is None):
        raise InvalidInputError("give either --dataset or --images")
    if dataset is not None:
        pool = [(r.path, dataset.read(r)) for r in dataset.records(split="test", condition="clean")[:n]]
        where = str(dataset.path)
    else:
        assert folder is not None
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:n]
        pool = [(str(p), p.read_bytes()) for p in files]
        where = str(folder)
    if not pool:
        raise InvalidInputError(f"{where} has no images to time")
    return [pool[i % len(pool)] for i in range(n)]


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return None if torch is None else int(torch.get_num_threads())


def _timed(function: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    value = function()
    return value, time.perf_counter() - began


def run_throughput(detector: Detector, images: Sequence[tuple[str, bytes]], *, batch_size: int = 256,
                   device: str = "cpu", precision: str = "fp32", artifact: ArtifactFile | None = None,
                   command: str = "", progress: Progress | None = None,
                   max_tiles: int = DEFAULT_MAX_TILES, decode_threads: int = 1) -> dict[str, Any]:
    """Images per second of ``detector`` on ``images`` (see the module), as a JSON-ready dict; an image larger
    than the detector's input is judged tile by tile, at most ``max_tiles`` of them (docs/tiles.md)."""
    say = progress or (lambda _: None)
    if precision != "fp32":
        if precision not in getattr(detector, "precisions", ("fp32",)):
            raise InvalidInputError(f"detector {detector.name} runs only in fp32, not {precision}")
        detector.precision = precision  # type: ignore[attr-defined]
    if artifact is not None:
        if not isinstance(detector, TrainableDetector):
            raise InvalidInputError(f"detector {detector.name} takes no model artifact")
        detector.use_artifact(artifact)
    else:
        attach(detector, None)
    detector.batch_size = batch_size  # type: ignore[misc]  # this instance only
    detector.load(device)
    warm = [make_input(data, name=name) for name, data in images[:batch_size]]
    run_detector(detector, warm, max_tiles=max_tiles)
    say(f"timing {len(images)} images, batches of {batch_size}, on {device} ({precision})")
    decoded, decode_s = _timed(lambda: decode_in_threads(lambda item: make_input(item[1], name=item[0]), images,
                                                          decode_threads))
    failed = [error for _, error in decoded if error]
    if failed:
        raise InvalidInputError(f"{len(failed)} of the images do not decode: {failed[0]}")
    inputs = [item for item, _ in decoded]
    findings, detect_s = _timed(lambda: run_detector(detector, inputs, max_tiles=max_tiles))
    errors = [f.error for f in findings if f.error]
    if errors:
        raise InvalidInputError(f"detector {detector.name} failed on {len(errors)} images: {errors[0]}")
    n = len(images)
    network = None
    if hasattr(detector, "network_throughput"):
        network = detector.network_throughput(batch_size=batch_size, n=n, device=device, precision=precision)
    return {
        "format": FORMAT,
        "command": command,
        "detector": detector.name,
        "detector_version": detector.version,
        "model_sha256": detector.model_sha256,
        "n": n,
        "batch_size": batch_size,
        "device": device,
        "precision": precision,
        "images_per_second": {
            "end_to_end": n / (decode_s + detect_s),
            "decode": n / decode_s,
            "detector": n / detect_s,
            "network": network,
        },
        "seconds": {"decode": decode_s, "detector": detect_s},
        "max_tiles": max_tiles,
        "decode_threads": decode_threads,
        "tiles_per_image": sum((f.evidence.get("tiles") or {}).get("analysed", 1) for f in findings) / n,
        "machine": {
            "cpus": os.cpu_count(), "torch_threads": _torch_threads(), "load_average": list(os.getloadavg()),
            "processor": platform.machine(), "python": platform.python_version(),
        },
        "labels": {label: sum(f.label == label for f in findings) for label in sorted({f.label for f in findings})},
    }
