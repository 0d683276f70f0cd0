"""Detectors for the worker tests: one slow enough to kill a worker in the middle, one that always raises.

``VESTIGE_TEST_SLOW_SECONDS`` sets the seconds the slow detector spends per
image (default 0.2). It records the process that loaded it, so tests can
check that weights are loaded once per worker process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from vestige.plugin import Detector, Finding, ImageInput, Picture, hookimpl


class SlowDetector(Detector):
    name = "slow-test"
    version = "0.1.0"
    kind = "attribution"
    description = "Test plugin: sleeps per image, labels bright images synthetic."
    batch_size = 4

    def __init__(self) -> None:
        self.loads = 0

    def load(self, device: str = "cpu") -> None:
        self.loads += 1
        self.loaded_in = os.getpid()

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        time.sleep(float(os.environ.get("VESTIGE_TEST_SLOW_SECONDS", "0.2")) * len(batch))
        findings = []
        for item in batch:
            mean = float(np.asarray(item.image, dtype=np.float32).mean())
            findings.append(self.finding(
                label="synthetic" if mean > 127 else "real", source="bright-gan" if mean > 127 else None,
                scores={"mean": mean}, evidence={"pid": os.getpid(), "loads": self.loads},
                pictures=[Picture("mean", "The image's mean, as one byte.", bytes([int(mean)]), "application/octet-stream")],
                embedding=[mean, mean / 2],
            ))
        return findings


class RaisingDetector(Detector):
    name = "raising-test"
    version = "0.1.0"
    kind = "attribution"
    description = "Test plugin: raises on every batch."

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        raise RuntimeError("this detector always fails")


class GpuPreferringDetector(Detector):
    name = "gpu-test"
    version = "0.1.0"
    kind = "attribution"
    description = "Test plugin: prefers a GPU; reports the device it was loaded on."
    device = "gpu"

    def load(self, device: str = "cpu") -> None:
        self.loaded_on = device

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        return [self.finding(label="unknown", evidence={"loaded_on": self.loaded_on}) for _ in batch]


@hookimpl
def vestige_detectors() -> list[Detector]:
    return [SlowDetector(), RaisingDetector(), GpuPreferringDetector()]
