"""The operations. None of them draws from ``rng``; they take it to honour the contract."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from vestige.plugin import ENCODED_IMAGE_KEY, Perturbation


class JpegRecompression(Perturbation):
    name = "jpeg"
    description = "Re-encode as baseline JPEG at the given quality (libjpeg via Pillow, 4:2:0)."
    parameters = {"quality": 75}

    def apply(self, image: Image.Image, *, rng: np.random.Generator, quality: int = 75, **_: Any) -> Image.Image:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"jpeg quality must lie in 1..100, not {quality!r}")
        buf = io.BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=int(quality), subsampling=2, optimize=False)
        data = buf.getvalue()
        out = Image.open(io.BytesIO(data))
        out.load()
        out.info[ENCODED_IMAGE_KEY] = data  # the derivative is this JPEG file, not a PNG of it
        return out


class Resize(Perturbation):
    name = "resize"
    description = "Scale both sides by a factor (Lanczos), as a site re-sharing a picture would."
    parameters = {"scale": 0.5}

    def apply(self, image: Image.Image, *, rng: np.random.Generator, scale: float = 0.5, **_: Any) -> Image.Image:
        if not 0 < float(scale) <= 4:
            raise ValueError(f"resize scale must lie in (0, 4], not {scale!r}")
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, Image.Resampling.LANCZOS)


class CentreCrop(Perturbation):
    name = "crop"
    description = "Keep the centre, the given fraction of each side."
    parameters = {"fraction": 0.9}

    def apply(self, image: Image.Image, *, rng: np.random.Generator, fraction: float = 0.9, **_: Any) -> Image.Image:
        if not 0 < float(fraction) <= 1:
            raise ValueError(f"crop fraction must lie in (0, 1], not {fraction!r}")
        w, h = max(1, round(image.width * fraction)), max(1, round(image.height * fraction))
        left, top = (image.width - w) // 2, (image.height - h) // 2
        return image.crop((left, top, left + w, top + h))


class GaussianBlur(Perturbation):
    name = "blur"
    description = "Gaussian blur of the given radius in pixels."
    parameters = {"radius": 1.0}

    def apply(self, image: Image.Image, *, rng: np.random.Generator, radius: float = 1.0, **_: Any) -> Image.Image:
        if not 0 <= float(radius) <= 50:
            raise ValueError(f"blur radius must lie in [0, 50], not {radius!r}")
        return image.filter(ImageFilter.GaussianBlur(radius=float(radius)))
