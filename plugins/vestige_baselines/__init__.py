"""Classic baselines for attribution: kNN on pixels, Eigenface, PRNU, DCT spectrum (being built)."""

from __future__ import annotations

from vestige.plugin import Detector, hookimpl

__version__ = "0.1.0"


@hookimpl
def vestige_detectors() -> list[Detector]:
    return []
