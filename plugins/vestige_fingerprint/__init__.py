"""Learned GAN fingerprints (Yu, Davis, Fritz, ICCV 2019) as the ``fingerprint`` detector.

Two variants: a ProGAN-discriminator-shaped image classifier, and the
auto-encoder whose image fingerprint (image minus reconstruction) is matched
against one learnable model fingerprint per class. Probabilities are
temperature-calibrated on validation, and an image the model is unsure of is
``unknown`` rather than attributed. Trained with ``vestige train fingerprint``;
the default artifact, trained on zoo32, ships in ``weights/``
(``docs/fingerprint.md``).
"""

from __future__ import annotations

from vestige.plugin import Detector, hookimpl
from vestige_fingerprint.detector import VERSION, FingerprintDetector

__version__ = VERSION
__all__ = ["FingerprintDetector", "vestige_commands", "vestige_detectors"]


@hookimpl
def vestige_detectors() -> list[Detector]:
    return [FingerprintDetector()]


@hookimpl
def vestige_commands(cli) -> None:
    """Add ``vestige fingerprint`` (the model-fingerprint grid; shipping artifacts)."""
    from vestige_fingerprint.commands import fingerprint

    cli.add_command(fingerprint)
