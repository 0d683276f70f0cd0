"""ManiFPT (Song, Khayatkhoei, AbdAlmageed, CVPR 2024): attribution from an image's deviation from real images.

The fingerprint of a generated image is its *artifact*: the image minus its
projection onto the manifold of real images, where the manifold is a set of a
lab's real reference images and the projection the nearest one (in RGB, in
log-magnitude spectra, or in the zoo classifier's features). A small network
trained on artifacts names the source. See docs/manifpt.md.

Importing this package imports no torch: the detector and commands import it
when they run.
"""

from __future__ import annotations

from typing import Any

from vestige.plugin import Detector, hookimpl

__version__ = "0.1.0"
__all__ = ["vestige_commands", "vestige_detectors"]


@hookimpl
def vestige_detectors() -> list[Detector]:
    from vestige_manifpt.detector import ManifptDetector

    return [ManifptDetector()]


@hookimpl
def vestige_commands(cli: Any) -> None:
    """Add ``vestige manifpt``."""
    from vestige_manifpt.commands import manifpt

    cli.add_command(manifpt)
