"""The perturbations of Yu et al.'s robustness study, for immunisation (fine-tuning on perturbed images).

Each of four operations is applied independently with probability 0.5, in
the order a re-sharing pipeline would: centre crop of 5–20 % of each side,
resized back (bilinear); Gaussian blur with a kernel of 3, 5, 7 or 9 pixels
(σ = 0.3·((k − 1)/2 − 1) + 0.8, OpenCV's σ for a k-tap kernel: 0.8–1.7 px);
Gaussian noise of σ 5–20 on 0–255; JPEG at quality 10–75. The operations are
the registered perturbations ``crop``, ``blur``, ``noise`` and ``jpeg`` (the
built-in perturbation plugin's), looked up by name, so the names and
parameters match what perturbation history records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

#: The recipe as stored in an immunised artifact's info.
RECIPE: dict[str, Any] = {
    "probability": 0.5,
    "crop": {"fraction_removed": [0.05, 0.20], "resize_back": "bilinear"},
    "blur": {"kernel": [3, 5, 7, 9], "sigma": "0.3*((k-1)/2-1)+0.8"},
    "noise": {"sigma_255": [5, 20]},
    "jpeg": {"quality": [10, 75]},
}


def _operations() -> dict[str, Any]:
    from vestige.plugin import PluginError
    from vestige.plugin.augment import registered_operations

    available = registered_operations()
    missing = [name for name in ("crop", "blur", "noise", "jpeg") if name not in available]
    if missing:
        raise PluginError(f"immunisation needs the perturbation operations {', '.join(missing)}, which no plugin "
                          "registers; check `vestige plugins`")
    return {name: available[name] for name in ("crop", "blur", "noise", "jpeg")}


class Immuniser:
    """Applies the recipe to pictures, drawing every choice from the generator it is handed."""

    def __init__(self) -> None:
        self.ops = _operations()

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        size = image.size
        if rng.random() < 0.5:
            removed = rng.uniform(0.05, 0.20)
            image = self.ops["crop"].apply(image, rng=rng, fraction=1.0 - removed, position="centre")
            image = image.resize(size, Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            kernel = int(rng.choice([3, 5, 7, 9]))
            image = self.ops["blur"].apply(image, rng=rng, radius=0.3 * ((kernel - 1) / 2 - 1) + 0.8)
        if rng.random() < 0.5:
            image = self.ops["noise"].apply(image, rng=rng, sigma=float(rng.uniform(5.0, 20.0)))
        if rng.random() < 0.5:
            image = self.ops["jpeg"].apply(image, rng=rng, quality=int(rng.integers(10, 76)))
        return image
