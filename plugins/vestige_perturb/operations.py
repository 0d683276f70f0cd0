"""The plain operations: re-encoding, geometry, blur, noise and colour, each with explicit parameters.

Every operation validates its parameters (``ValueError`` with one line naming
the operation, the parameter and the allowed range) and returns an 8-bit RGB
image. Only those marked ``draws_from_rng`` use the generator they are given;
the rest are pure functions of the image and the parameters.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from vestige.plugin import ENCODED_IMAGE_KEY, Perturbation
from vestige_perturb.filters import to_array, to_image


class Operation(Perturbation):
    """An operation of this plugin: unknown parameters are refused, missing ones take their defaults."""

    #: Whether the result depends on the random generator (for some parameter values at least).
    draws_from_rng: ClassVar[bool] = False

    def apply(self, image: Image.Image, *, rng: np.random.Generator, **params: Any) -> Image.Image:
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            known = ", ".join(self.parameters) or "none"
            raise ValueError(f"{self.name} has no parameter {unknown[0]!r}; its parameters: {known}")
        out = self.perturb(image if image.mode == "RGB" else image.convert("RGB"), rng, **{**self.parameters, **params})
        out = out if out.mode == "RGB" else out.convert("RGB")
        inherited = image.info.get(ENCODED_IMAGE_KEY)
        if out is not image and inherited is not None and out.info.get(ENCODED_IMAGE_KEY) is inherited:
            del out.info[ENCODED_IMAGE_KEY]  # Pillow copied an earlier step's file; it is not this result's
        return out

    def perturb(self, image: Image.Image, rng: np.random.Generator, **params: Any) -> Image.Image:
        """The operation itself, on an RGB image with every parameter given."""
        raise NotImplementedError

    def number(self, key: str, value: Any, low: float, high: float, *, integer: bool = False,
               low_open: bool = False) -> Any:
        """``value`` as a number checked against [low, high] (or (low, high] when ``low_open``)."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        bracket = "(" if low_open else "["
        inside = (low < number if low_open else low <= number) and number <= high
        if not inside or (integer and number != int(number)):
            kind = "be an integer in" if integer else "lie in"
            raise ValueError(f"{self.name} {key} must {kind} {bracket}{low:g}, {high:g}], not {value!r}")
        return int(number) if integer else number

    def choice(self, key: str, value: Any, choices: Sequence[str]) -> str:
        if value not in choices:
            raise ValueError(f"{self.name} {key} must be one of {', '.join(choices)}, not {value!r}")
        return str(value)


def encode(image: Image.Image, fmt: str, **options: Any) -> Image.Image:
    """Encode, decode again, and keep the file: the derivative is that file, not a PNG of its pixels."""
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    data = buf.getvalue()
    out = Image.open(io.BytesIO(data))
    out.load()
    out = out.convert("RGB") if out.mode != "RGB" else out
    out.info[ENCODED_IMAGE_KEY] = data
    return out


class JpegRecompression(Operation):
    name = "jpeg"
    description = "Re-encode as baseline JPEG at the given quality (libjpeg via Pillow, 4:2:0)."
    parameters = {"quality": 75}

    def perturb(self, image: Image.Image, rng: np.random.Generator, quality: Any = 75, **_: Any) -> Image.Image:
        return encode(image, "JPEG", quality=self.number("quality", quality, 1, 100, integer=True), subsampling=2,
                      optimize=False)


class WebpRecompression(Operation):
    name = "webp"
    description = "Re-encode as lossy WebP at the given quality (libwebp via Pillow, method 4)."
    parameters = {"quality": 75}

    def perturb(self, image: Image.Image, rng: np.random.Generator, quality: Any = 75, **_: Any) -> Image.Image:
        return encode(image, "WEBP", quality=self.number("quality", quality, 0, 100, integer=True), method=4)


FILTERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
           "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


class Resize(Operation):
    name = "resize"
    description = "Scale both sides by a factor with the given filter, as a site re-sharing a picture would."
    parameters = {"scale": 0.5, "filter": "lanczos"}

    def perturb(self, image: Image.Image, rng: np.random.Generator, scale: Any = 0.5, filter: Any = "lanczos",
                **_: Any) -> Image.Image:
        scale = self.number("scale", scale, 0, 4, low_open=True)
        method = FILTERS[self.choice("filter", filter, tuple(FILTERS))]
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, method)


POSITIONS = ("centre", "top-left", "top-right", "bottom-left", "bottom-right", "random")


class Crop(Operation):
    name = "crop"
    description = "Keep the given fraction of each side, at the centre, a corner, or a random place."
    parameters = {"fraction": 0.9, "position": "centre"}
    draws_from_rng = True  # position=random

    def perturb(self, image: Image.Image, rng: np.random.Generator, fraction: Any = 0.9, position: Any = "centre",
                **_: Any) -> Image.Image:
        fraction = self.number("fraction", fraction, 0, 1, low_open=True)
        position = self.choice("position", position, POSITIONS)
        w, h = max(1, round(image.width * fraction)), max(1, round(image.height * fraction))
        free_x, free_y = image.width - w, image.height - h
        if position == "random":
            left, top = int(rng.integers(free_x + 1)), int(rng.integers(free_y + 1))
        else:
            left = {"left": 0, "right": free_x}.get(position.rsplit("-", 1)[-1], free_x // 2)
            top = {"top": 0, "bottom": free_y}.get(position.split("-", 1)[0], free_y // 2)
        return image.crop((left, top, left + w, top + h))


CentreCrop = Crop  # the name this operation had when it knew only the centre


class GaussianBlur(Operation):
    name = "blur"
    description = "Gaussian blur of the given radius (standard deviation) in pixels (Pillow)."
    parameters = {"radius": 1.0}

    def perturb(self, image: Image.Image, rng: np.random.Generator, radius: Any = 1.0, **_: Any) -> Image.Image:
        return image.filter(ImageFilter.GaussianBlur(radius=self.number("radius", radius, 0, 50)))


class GaussianNoise(Operation):
    name = "noise"
    description = "Add Gaussian noise of standard deviation sigma, in 0-255 units, independently per pixel and channel."
    parameters = {"sigma": 5.0}
    draws_from_rng = True

    def perturb(self, image: Image.Image, rng: np.random.Generator, sigma: Any = 5.0, **_: Any) -> Image.Image:
        sigma = self.number("sigma", sigma, 0, 255)
        pixels = to_array(image)
        return to_image(pixels + rng.normal(0.0, sigma / 255.0, pixels.shape).astype(np.float32))


class _Enhancement(Operation):
    """A Pillow ``ImageEnhance`` factor: 1 leaves the image as it is."""

    enhancer: ClassVar[type]
    parameters = {"factor": 1.0}

    def perturb(self, image: Image.Image, rng: np.random.Generator, factor: Any = 1.0, **_: Any) -> Image.Image:
        return self.enhancer(image).enhance(self.number("factor", factor, 0, 5))


class Brightness(_Enhancement):
    name = "brightness"
    description = "Multiply brightness by a factor in [0, 5] (0 black, 1 unchanged)."
    enhancer = ImageEnhance.Brightness
    parameters = {"factor": 1.2}


class Contrast(_Enhancement):
    name = "contrast"
    description = "Scale contrast about the mean grey by a factor in [0, 5] (0 flat grey, 1 unchanged)."
    enhancer = ImageEnhance.Contrast
    parameters = {"factor": 1.2}


class Saturation(_Enhancement):
    name = "saturation"
    description = "Scale colour saturation by a factor in [0, 5] (0 greyscale, 1 unchanged)."
    enhancer = ImageEnhance.Color
    parameters = {"factor": 1.2}


class Gamma(Operation):
    name = "gamma"
    description = "Gamma curve: each channel v in [0, 1] becomes v ** gamma (gamma < 1 brightens)."
    parameters = {"gamma": 1.0}

    def perturb(self, image: Image.Image, rng: np.random.Generator, gamma: Any = 1.0, **_: Any) -> Image.Image:
        gamma = self.number("gamma", gamma, 0.1, 10)
        table = [round(255 * (v / 255) ** gamma) for v in range(256)]
        return image.point(table * 3)


class Sharpen(Operation):
    name = "sharpen"
    description = "Unsharp mask: add amount × (image − Gaussian blur of the given radius)."
    parameters = {"amount": 1.0, "radius": 1.0}

    def perturb(self, image: Image.Image, rng: np.random.Generator, amount: Any = 1.0, radius: Any = 1.0,
                **_: Any) -> Image.Image:
        amount = self.number("amount", amount, 0, 10)
        radius = self.number("radius", radius, 0, 20)
        return image.filter(ImageFilter.UnsharpMask(radius=radius, percent=round(amount * 100), threshold=0))


BORDERS = ("reflect", "crop", "black")


class Rotate(Operation):
    name = "rotate"
    description = ("Rotate by a small angle (degrees, anticlockwise, |degrees| <= 45), bicubic; border: reflect "
                   "(mirror the picture into the corners, same size), crop (largest upright rectangle inside) or black.")
    parameters = {"degrees": 5.0, "border": "reflect"}

    def perturb(self, image: Image.Image, rng: np.random.Generator, degrees: Any = 5.0, border: Any = "reflect",
                **_: Any) -> Image.Image:
        degrees = self.number("degrees", degrees, -45, 45)
        border = self.choice("border", border, BORDERS)
        w, h = image.size
        if border == "black":
            return image.rotate(degrees, Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
        if border == "crop":
            rotated = image.rotate(degrees, Image.Resampling.BICUBIC, expand=True)
            cw, ch = _inscribed(w, h, math.radians(abs(degrees)))
            left, top = (rotated.width - cw) // 2, (rotated.height - ch) // 2
            return rotated.crop((left, top, left + cw, top + ch))
        c, s = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
        pad_x = math.ceil((w * c + h * s - w) / 2) + 2
        pad_y = math.ceil((w * s + h * c - h) / 2) + 2
        padded = Image.fromarray(np.pad(np.asarray(image), ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="symmetric"))
        rotated = padded.rotate(degrees, Image.Resampling.BICUBIC)
        return rotated.crop((pad_x, pad_y, pad_x + w, pad_y + h))


def _inscribed(w: int, h: int, angle: float) -> tuple[int, int]:
    """Sides of the largest axis-aligned rectangle inside a w×h rectangle rotated by ``angle`` (radians, 0..π/4)."""
    if angle < 1e-9:
        return w, h
    long, short = max(w, h), min(w, h)
    s, c = math.sin(angle), math.cos(angle)
    if short <= 2 * s * c * long or abs(s - c) < 1e-10:
        x = 0.5 * short  # half-constrained: two corners touch the longer side
        wr, hr = (x / s, x / c) if w >= h else (x / c, x / s)
    else:
        cos2 = c * c - s * s
        wr, hr = (w * c - h * s) / cos2, (h * c - w * s) / cos2
    return max(1, math.floor(wr)), max(1, math.floor(hr))


PLAIN_OPERATIONS: tuple[Operation, ...] = (
    JpegRecompression(), WebpRecompression(), Resize(), Crop(), GaussianBlur(), GaussianNoise(), Brightness(),
    Contrast(), Saturation(), Gamma(), Sharpen(), Rotate(),
)
