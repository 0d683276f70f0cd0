"""Built-in perturbation operations: re-encoding, geometry, blur, noise, colour and ImageNet-C-style corruptions.

Robustness probes (``vestige analyze --robustness``) and ``vestige perturb``
apply them and record them as *applied* perturbation history; training code
draws RepMix's corruptions with ``random_corruption`` or ``augment``. They are
registered through the ``vestige_perturbations`` hook like any third-party
operation. docs/perturbations.md lists them with their parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from vestige.plugin import Perturbation, hookimpl
from vestige_perturb.corruptions import (
    CORRUPTIONS, REPMIX_PROBABILITY, SEEN_CORRUPTIONS, UNSEEN_CORRUPTIONS, augment, random_corruption,
)
from vestige_perturb.operations import (
    PLAIN_OPERATIONS, CentreCrop, Crop, GaussianBlur, JpegRecompression, Operation, Resize,
)

__version__ = "0.2.0"
__all__ = [
    "CORRUPTIONS", "OPERATIONS", "REPMIX_PROBABILITY", "SEEN_CORRUPTIONS", "UNSEEN_CORRUPTIONS", "CentreCrop", "Crop",
    "GaussianBlur", "JpegRecompression", "Operation", "Resize", "apply_ops", "augment", "random_corruption",
    "vestige_perturbations",
]

#: Every operation of this plugin, by name.
OPERATIONS: dict[str, Operation] = {op.name: op for op in (*PLAIN_OPERATIONS, *CORRUPTIONS.values())}


def apply_ops(image: Image.Image, ops: Sequence[Mapping[str, Any]], rng: np.random.Generator) -> Image.Image:
    """Apply a chain of op records (``{"op": name, "params": {...}}``) of this plugin, in order, drawing from ``rng``."""
    for op in ops:
        if op["op"] not in OPERATIONS:
            raise ValueError(f"no operation named {op['op']!r}; operations: {', '.join(OPERATIONS)}")
        image = OPERATIONS[op["op"]].apply(image, rng=rng, **op.get("params", {}))
    return image


@hookimpl
def vestige_perturbations() -> list[Perturbation]:
    return list(OPERATIONS.values())
