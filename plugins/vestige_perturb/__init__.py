"""Built-in perturbation operations: JPEG, resize, centre crop, Gaussian blur.

Robustness probes (``vestige analyze --robustness``) apply them to each image
and record them as *applied* perturbation history. They are registered through
the ``vestige_perturbations`` hook like any third-party operation.
"""

from __future__ import annotations

from vestige.plugin import Perturbation, hookimpl
from vestige_perturb.operations import CentreCrop, GaussianBlur, JpegRecompression, Resize

__version__ = "0.1.0"
__all__ = ["CentreCrop", "GaussianBlur", "JpegRecompression", "Resize", "vestige_perturbations"]


@hookimpl
def vestige_perturbations() -> list[Perturbation]:
    return [JpegRecompression(), Resize(), CentreCrop(), GaussianBlur()]
