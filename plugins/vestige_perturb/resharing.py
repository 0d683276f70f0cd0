"""Re-sharing augmentation: the steps a picture goes through when it is re-shared, drawn at random.

Trainers apply it to a share of their training images from the first epoch
(issue 18): each step independently with probability 0.5, in the order a
site re-shares (crop, downscale, blur, JPEG). Cropped and shrunk pictures are
scaled back up (bicubic) as detectors' inference does with small inputs. The
operations are this plugin's own, so names and parameters match what
perturbation history records. Used by the fingerprint detector's
``augment`` option and by the ``cnn`` baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from vestige_perturb.operations import Crop, GaussianBlur, JpegRecompression

#: The recipe, as stored in the info of an artifact trained with it.
RESHARING: dict[str, Any] = {
    "step_probability": 0.5,
    "crop": {"fraction_kept": [0.8, 1.0], "resize_back": "bicubic"},
    "resize": {"scale": [0.5, 1.0], "resize_back": "bicubic"},
    "blur": {"sigma": [0.3, 1.5]},
    "jpeg": {"quality": [40, 95]},
}


class Resharer:
    """Applies :data:`RESHARING` to pictures, drawing every choice from the generator it is handed."""

    def __init__(self) -> None:
        self.ops = {"crop": Crop(), "blur": GaussianBlur(), "jpeg": JpegRecompression()}

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        size = image.size
        if rng.random() < 0.5:
            image = self.ops["crop"].apply(image, rng=rng, fraction=float(rng.uniform(0.8, 1.0)), position="centre")
            image = image.resize(size, Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            scale = float(rng.uniform(0.5, 1.0))
            small = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
            image = image.resize(small, Image.Resampling.BICUBIC).resize(size, Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            image = self.ops["blur"].apply(image, rng=rng, radius=float(rng.uniform(0.3, 1.5)))
        if rng.random() < 0.5:
            image = self.ops["jpeg"].apply(image, rng=rng, quality=int(rng.integers(40, 96)))
        return image
