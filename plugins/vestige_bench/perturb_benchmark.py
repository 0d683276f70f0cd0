"""``vestige bench perturb``: how many small images per second the perturbation operations get through.

Measured in this process on one thread, on distinct photo-like SIZE×SIZE RGB
images held in memory (no decoding or encoding around the operation, except
what the operation itself does):

- **training chain**: ``vestige_perturb.augment``, the augmentation RepMix
  trains with: with p = 0.95 one of the 15 seen corruptions at a severity
  drawn from 1..5, else the image as it is;
- **each operation alone**, with its default parameters; a corruption cycles
  through severities 1..5.

Each measurement is repeated and the median kept: the development machine is
shared, so a single run can be slowed by a neighbour.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from vestige.core.plugins import get_plugin_manager
from vestige.evidence.derivatives import get_perturbations
from vestige_bench.benchmarks import _machine


def sample_images(count: int, size: int, seed: int = 0) -> list[Image.Image]:
    """Distinct photo-like pictures: smooth coloured waves plus a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = []
    for _ in range(count):
        f = rng.uniform(1, 6, size=(3, 2))
        phase = rng.uniform(0, 2 * np.pi, size=3)
        waves = [128 + 90 * np.sin(2 * np.pi * f[c, 0] * xx + phase[c]) * np.cos(2 * np.pi * f[c, 1] * yy)
                 for c in range(3)]
        pixels = np.stack(waves, -1) + rng.normal(0, 8, (size, size, 3))
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
    return images


def _rate(step: Callable[[Image.Image, np.random.Generator, int], Any], images: list[Image.Image], count: int,
          repeats: int) -> dict[str, float]:
    """Median images/s over ``repeats`` runs of ``count`` calls each."""
    rates = []
    for repeat in range(repeats):
        rng = np.random.default_rng(repeat)
        start = time.perf_counter()
        for i in range(count):
            step(images[i % len(images)], rng, i)
        rates.append(count / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {"images_per_s": round(rate, 1), "ms_per_image": round(1000 / rate, 4), "runs": [round(r, 1) for r in rates]}


def run_perturb_benchmark(*, count: int = 2000, per_op: int = 200, size: int = 32, repeats: int = 3) -> dict[str, Any]:
    """The training chain over ``count`` images and each operation over ``per_op``, ``repeats`` times each."""
    from vestige_perturb import REPMIX_PROBABILITY, SEEN_CORRUPTIONS, augment

    images = sample_images(64, size)
    operations = get_perturbations(get_plugin_manager())
    for op in operations.values():  # first calls pay for imports and FFT plans; keep them out of the timings
        op.apply(images[0], rng=np.random.default_rng(0))
    chain = _rate(lambda image, rng, i: augment(image, rng), images, count, repeats)
    each: dict[str, Any] = {}
    for name, op in sorted(operations.items()):
        if "severity" in op.parameters:
            step = (lambda op: lambda image, rng, i: op.apply(image, rng=rng, severity=1 + i % 5))(op)
        else:
            step = (lambda op: lambda image, rng, i: op.apply(image, rng=rng))(op)
        each[name] = _rate(step, images, per_op, repeats)
    return {
        "benchmark": "perturb",
        "size": size,
        "training_chain": {"description": f"p={REPMIX_PROBABILITY}: one of {len(SEEN_CORRUPTIONS)} seen corruptions, "
                                          "severity 1..5", "images": count, **chain},
        "per_operation_images": per_op,
        "operations": each,
        "repeats": repeats,
        "threads": 1,
        "machine": _machine(),
    }
