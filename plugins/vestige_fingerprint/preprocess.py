"""From a decoded picture to the network's input side, without torch.

A model is trained at one side ``S`` (the training images' side, 4·2^k).
Another picture is brought to ``S``×``S`` like this: when both of its sides
are at least ``S``, the centre ``S``×``S`` crop is taken, because resampling
would smear the pixel-level traces the fingerprint lives in (Yu et al.
found them in small patches too); when a side is shorter, the picture is
scaled up (bicubic) so its shorter side is ``S``, then centre-cropped. The
evidence of a finding says which of the two happened.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image


def training_side(sizes: Iterable[tuple[int, int]]) -> int:
    """The side a model is built for: the most common shorter side, rounded down to 4·2^k (at least 8)."""
    counts: dict[int, int] = {}
    for width, height in sizes:
        side = min(width, height)
        counts[side] = counts.get(side, 0) + 1
    if not counts:
        raise ValueError("no images to choose an input side from")
    common = max(sorted(counts), key=lambda s: counts[s])
    return max(8, 4 * 2 ** int(math.floor(math.log2(max(common, 8) / 4))))


def fit_to_side(image: Image.Image, side: int) -> tuple[Image.Image, str]:
    """``image`` as ``side``×``side`` RGB, and how: ``as-is``, ``centre-crop`` or ``upscaled``."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    width, height = image.size
    how = "as-is"
    if min(width, height) < side:
        scale = side / min(width, height)
        width, height = max(side, round(width * scale)), max(side, round(height * scale))
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        how = "upscaled"
    if (width, height) != (side, side):
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        how = "centre-crop" if how == "as-is" else how
    return image, how


def stack(images: Sequence[Image.Image], side: int) -> tuple[np.ndarray, list[str]]:
    """A uint8 array N×3×side×side of ``images`` fitted to ``side``, and how each was fitted."""
    out = np.empty((len(images), 3, side, side), dtype=np.uint8)
    hows = []
    for i, image in enumerate(images):
        fitted, how = fit_to_side(image, side)
        out[i] = np.asarray(fitted, dtype=np.uint8).transpose(2, 0, 1)
        hows.append(how)
    return out, hows
