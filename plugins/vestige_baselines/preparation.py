"""How a baseline turns an image of any size into the square array it works on.

The working resolution S is fixed when the detector is trained (``S×S``,
recorded in the artifact as ``input_size``): the training images' common size
when they are all square and of one size (32 for zoo32), else their smallest
shorter side, at most :data:`MAX_DERIVED_SIZE`; ``--size`` overrides both.

Two ways of bringing an image to S×S, chosen per detector:

- ``resize`` (kNN, Eigenface: they compare whole pictures): the largest
  centred square, resampled to S×S (bicubic, antialiased when shrinking);
- ``crop`` (PRNU, DCT: they look at pixel-scale traces that resampling would
  erase): the centred S×S window, no resampling; an image smaller than S on
  some side is handled as ``resize`` (upsampled), and the evidence says so.

An image already S×S is used as it is by both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from vestige.plugin.training import Example

MAX_DERIVED_SIZE = 128
PREPARATIONS = ("resize", "crop")


def working_size(images: Sequence[Image.Image], requested: int | None = None) -> int:
    """The side S of the square the detector works at, from its training images (or ``requested``)."""
    if requested:
        return int(requested)
    sizes = {image.size for image in images}
    if len(sizes) == 1:
        ((width, height),) = sizes
        if width == height:
            return min(width, MAX_DERIVED_SIZE)
    return min(MAX_DERIVED_SIZE, min(min(image.size) for image in images))


def _centre_box(width: int, height: int, side_w: int, side_h: int) -> tuple[int, int, int, int]:
    left, top = (width - side_w) // 2, (height - side_h) // 2
    return left, top, left + side_w, top + side_h


def prepare(image: Image.Image, size: int, how: str) -> tuple[np.ndarray, dict[str, Any]]:
    """``image`` as an ``(S, S, 3)`` uint8 array, and how it was brought there (for the evidence)."""
    image = image.convert("RGB") if image.mode != "RGB" else image
    width, height = image.size
    note: dict[str, Any] = {"width": width, "height": height, "working_size": size}
    if (width, height) == (size, size):
        note["preparation"] = "as is"
    elif how == "crop" and width >= size and height >= size:
        image = image.crop(_centre_box(width, height, size, size))
        note["preparation"] = "centre crop"
    else:
        side = min(width, height)
        image = image.crop(_centre_box(width, height, side, side)).resize((size, size), Image.Resampling.BICUBIC)
        note["preparation"] = "centre square upsampled" if side < size else "centre square resized"
    return np.asarray(image, dtype=np.uint8).copy(), note


def load_split(examples: Sequence[Example], sources: Sequence[str], size: int,
               how: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(N, S, S, 3)`` uint8 and source indices ``(N,)`` of a split, in its order."""
    index = {source: i for i, source in enumerate(sources)}
    pixels = np.zeros((len(examples), size, size, 3), dtype=np.uint8)
    labels = np.zeros(len(examples), dtype=np.int64)
    for row, example in enumerate(examples):
        pixels[row], _ = prepare(example.image.image, size, how)
        labels[row] = index[example.source]
    return pixels, labels
