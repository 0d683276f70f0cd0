"""RepMix (Bui, Yu, Collomosse, ECCV 2022): attribution robust to re-sharing (docs/repmix.md)."""

from __future__ import annotations

from vestige.plugin import Detector, hookimpl

from vestige_repmix.detector import RepMixDetector

__all__ = ["RepMixDetector"]
__version__ = RepMixDetector.version


@hookimpl
def vestige_detectors() -> list[Detector]:
    return [RepMixDetector()]
