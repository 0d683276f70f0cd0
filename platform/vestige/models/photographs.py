"""Real photographs every installation has: the camera, microscope and telescope pictures scikit-image bundles.

Detectors use them as real negatives (:func:`vestige.plugin.reference_photographs`)
and the open-world benchmark asks whether a detector accuses them. Reading
them needs no download; scikit-image comes with the ``dev`` extra.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: scikit-image's bundled camera, microscope and telescope photographs (no download needed).
PHOTOGRAPHS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "text", "brick",
               "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "retina", "cell", "microaneurysms")


def package_photographs() -> dict[str, Image.Image]:
    """Name -> RGB picture, at native resolution; ImportError when scikit-image is not installed."""
    from skimage import data

    out = {}
    for name in PHOTOGRAPHS:
        pixels = np.asarray(getattr(data, name)())
        out[name] = Image.fromarray(pixels).convert("RGB")
    return out
