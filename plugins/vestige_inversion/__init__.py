"""Verification by inversion: did one of the lab's generators make this image?

For each candidate generator registered through ``vestige_generators`` (the
zoo, and any model a lab registers with its own plugin) the detector
optimises the generator's input to reconstruct the image and tests the
reached loss against that generator's calibration: the losses of its own
samples (RONAN; LatentTracer's encoder start where the model has an
encoder). See ``docs/inversion.md``.

Importing this package does not import torch: the detector and commands do,
when they are used.
"""

from __future__ import annotations

from vestige.plugin import Detector, hookimpl

__version__ = "1.0.0"
__all__ = ["vestige_commands", "vestige_detectors"]


@hookimpl
def vestige_detectors() -> list[Detector]:
    """The inversion verifier (generators and calibrations load in ``Detector.load``)."""
    from vestige_inversion.detector import InversionDetector

    return [InversionDetector()]


@hookimpl
def vestige_commands(cli) -> None:
    """Add ``vestige inversion`` and ``vestige generators``."""
    from vestige_inversion.commands import inversion
    from vestige_inversion.generator_commands import generators

    cli.add_command(inversion)
    cli.add_command(generators)
