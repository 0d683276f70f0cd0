"""ImageNet-C-style corruptions (Hendrycks & Dietterich, ICLR 2019), each an operation taking ``severity`` 1..5.

RepMix trains with one corruption from the 15 ``SEEN_CORRUPTIONS`` on 95 % of
images and keeps the 4 ``UNSEEN_CORRUPTIONS`` for testing. Each operation is
named ``corrupt-`` plus ImageNet-C's name with hyphens, so none clashes with a
plain operation (``corrupt-brightness`` is not ``brightness``).

The code and the severity tables are Vestige's own, with magnitudes in the
spirit of ImageNet-C's. Intensity-like levels (noise, brightness, contrast,
saturation, JPEG quality, zoom) are used as they are at any size; pixel
extents (blur radii, glass jitter, motion length, snow flakes) are given for
224×224 and multiplied by ``filters.spatial_scale`` (0.38 at 32×32); the
elastic displacement and the pixelation are fractions of the image. Frost,
fog, snow and spatter are procedural (``textures``). docs/perturbations.md
has the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from vestige.plugin import PluginError, augment as augment_mod
from vestige.plugin.augment import REPMIX_PROBABILITY, SEEN_CORRUPTIONS, SEVERITIES, UNSEEN_CORRUPTIONS
from vestige_perturb.filters import (
    convolve, disk_kernel, gaussian_blur, line_kernel, resize_plane, sample, spatial_scale, to_array, to_image,
)
from vestige_perturb.operations import JpegRecompression, Operation
from vestige_perturb.textures import fog_layer, frost_layer, snow_layer, splash_mask

Level = Any
Function = Callable[[Image.Image, np.random.Generator, Level], Any]  # an array in [0, 1], or an image


def _scale(image: Image.Image) -> float:
    return spatial_scale(image.height, image.width)


# --- noise ----------------------------------------------------------------------------------------

def gaussian_noise(image: Image.Image, rng: np.random.Generator, sigma: float) -> np.ndarray:
    x = to_array(image)
    return x + rng.normal(0.0, sigma, x.shape).astype(np.float32)


def shot_noise(image: Image.Image, rng: np.random.Generator, photons: float) -> np.ndarray:
    """Poisson photon noise: a pixel of value v counts Poisson(v · photons) photons."""
    return (rng.poisson(to_array(image) * photons) / photons).astype(np.float32)


def impulse_noise(image: Image.Image, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Salt and pepper: each channel value turns 0 or 1 with probability ``amount``."""
    x = to_array(image)
    u = rng.random(x.shape, dtype=np.float32)
    return np.where(u < amount / 2, 0.0, np.where(u > 1 - amount / 2, 1.0, x)).astype(np.float32)


def speckle_noise(image: Image.Image, rng: np.random.Generator, sigma: float) -> np.ndarray:
    x = to_array(image)
    return x * (1.0 + rng.normal(0.0, sigma, x.shape).astype(np.float32))


# --- blur -----------------------------------------------------------------------------------------

def defocus_blur(image: Image.Image, rng: np.random.Generator, radius: float) -> np.ndarray:
    return convolve(to_array(image), disk_kernel(max(0.6, radius * _scale(image))))


def gaussian_blur_c(image: Image.Image, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return gaussian_blur(to_array(image), sigma * _scale(image))


def glass_blur(image: Image.Image, rng: np.random.Generator, level: tuple[float, float, int]) -> np.ndarray:
    """Frosted glass: blur, then each pixel takes a random neighbour's value within ``delta`` (repeatedly), blur."""
    sigma, delta, iterations = level
    scale = _scale(image)
    x = gaussian_blur(to_array(image), sigma * scale)
    reach = max(1, round(delta * scale))
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(iterations):
        dy, dx = rng.integers(-reach, reach + 1, (2, h, w))
        x = x[np.clip(yy + dy, 0, h - 1), np.clip(xx + dx, 0, w - 1)]
    return gaussian_blur(x, sigma * scale)


def motion_blur(image: Image.Image, rng: np.random.Generator, level: tuple[float, float]) -> np.ndarray:
    """A camera shake in one direction, at an angle drawn from [-45°, 45°]."""
    length, sigma = level
    scale = _scale(image)
    angle = float(rng.uniform(-45.0, 45.0))
    return convolve(to_array(image), line_kernel(length * scale, sigma * scale, angle))


def zoom_blur(image: Image.Image, rng: np.random.Generator, level: tuple[float, float]) -> np.ndarray:
    """The mean of the image and centre zooms of it up to ``most`` times, ``step`` apart (a zooming lens)."""
    most, step = level
    w, h = image.size
    total = to_array(image)
    zooms = np.arange(1.0 + step, most + 1e-9, step)
    for z in zooms:
        box = (w / 2 - w / (2 * z), h / 2 - h / (2 * z), w / 2 + w / (2 * z), h / 2 + h / (2 * z))
        total += to_array(image.resize((w, h), Image.Resampling.BILINEAR, box=box))
    return total / (len(zooms) + 1)


# --- weather (procedural) -------------------------------------------------------------------------

def frost(image: Image.Image, rng: np.random.Generator, level: tuple[float, float]) -> np.ndarray:
    keep, ice = level
    return keep * to_array(image) + ice * frost_layer(rng, image.height, image.width)


def fog(image: Image.Image, rng: np.random.Generator, level: tuple[float, float]) -> np.ndarray:
    strength, persistence = level
    x = to_array(image)
    top = float(x.max())
    haze = fog_layer(rng, image.height, image.width, persistence=persistence)[..., None]
    return (x + strength * haze) * top / (top + strength)


def snow(image: Image.Image, rng: np.random.Generator, level: tuple[float, float, float, float]) -> np.ndarray:
    """Greyed, whitened picture under two layers of falling flakes."""
    density, flake, streak, whiten = level
    scale = _scale(image)
    x = to_array(image)
    grey = x.mean(axis=-1, keepdims=True)
    x = (1 - whiten) * x + whiten * np.maximum(x, grey * 1.5 + 0.5)
    angle = float(rng.uniform(-120.0, -60.0))
    size = max(1.0, flake * scale)
    near = snow_layer(rng, image.height, image.width, density=density, flake=size, streak=streak * scale, angle=angle)
    far = snow_layer(rng, image.height, image.width, density=density, flake=size * 0.6, streak=streak * scale * 0.5,
                     angle=angle)
    return x + (near + 0.6 * far)[..., None]


def spatter(image: Image.Image, rng: np.random.Generator, level: tuple[float, int, str]) -> np.ndarray:
    """Drops on the lens: clear water (blurred, bluish) at low severities, opaque mud at high ones."""
    coverage, cells, liquid = level
    x = to_array(image)
    mask = splash_mask(rng, image.height, image.width, coverage=coverage, cells=cells)[..., None]
    if liquid == "water":
        under = 0.6 * gaussian_blur(x, 2.0 * _scale(image)) + 0.4 * np.array([0.5, 0.62, 0.8], np.float32)
        return (1 - mask) * x + mask * under
    mud = np.array([0.36, 0.26, 0.15], np.float32) * (0.8 + 0.4 * rng.random(mask.shape, dtype=np.float32))
    return (1 - 0.9 * mask) * x + 0.9 * mask * mud


# --- digital --------------------------------------------------------------------------------------

def brightness(image: Image.Image, rng: np.random.Generator, shift: float) -> np.ndarray:
    """Raise HSV value by ``shift``, keeping hue and saturation (rgb scales with the value)."""
    x = to_array(image)
    value = x.max(axis=-1, keepdims=True)
    raised = np.minimum(value + shift, 1.0)
    return np.where(value > 0, x * raised / np.maximum(value, 1e-6), raised)


def contrast(image: Image.Image, rng: np.random.Generator, factor: float) -> np.ndarray:
    x = to_array(image)
    mean = x.mean(axis=(0, 1), keepdims=True)
    return (x - mean) * factor + mean


def saturate(image: Image.Image, rng: np.random.Generator, level: tuple[float, float]) -> np.ndarray:
    """HSV saturation becomes s · multiply + add, keeping hue and value (grey takes hue 0, as HSV does)."""
    multiply, add = level
    x = to_array(image)
    value, low = x.max(axis=-1, keepdims=True), x.min(axis=-1, keepdims=True)
    chroma = value - low
    s = np.clip(np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0) * multiply + add, 0.0, 1.0)
    new_low = value * (1 - s)
    coloured = new_low + (x - low) * (value - new_low) / np.maximum(chroma, 1e-6)
    grey = np.concatenate([value, new_low, new_low], axis=-1)
    return np.where(chroma > 1e-6, coloured, grey)


def elastic(image: Image.Image, rng: np.random.Generator, level: tuple[float, int]) -> np.ndarray:
    """A smooth random displacement of up to ``fraction`` of the shorter side, varying over ``cells`` cells."""
    fraction, cells = level
    h, w = image.height, image.width
    reach = fraction * min(h, w)
    dy, dx = (resize_plane(rng.uniform(-1.0, 1.0, (cells + 1, cells + 1)), w, h) * reach for _ in range(2))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return sample(to_array(image), yy + dy, xx + dx)


def pixelate(image: Image.Image, rng: np.random.Generator, factor: float) -> Image.Image:
    w, h = image.size
    small = image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BOX)
    return small.resize((w, h), Image.Resampling.NEAREST)


def jpeg_compression(image: Image.Image, rng: np.random.Generator, quality: int) -> Image.Image:
    return JpegRecompression().apply(image, rng=rng, quality=quality)


# name -> (function, severity levels 1..5, draws from rng, description)
_TABLE: dict[str, tuple[Function, Sequence[Level], bool, str]] = {
    "gaussian-noise": (gaussian_noise, (0.06, 0.10, 0.15, 0.22, 0.32), True,
                       "Additive Gaussian noise, sigma 0.06 .. 0.32 of full scale."),
    "shot-noise": (shot_noise, (60, 30, 15, 8, 4), True, "Poisson photon noise, 60 .. 4 photons at full scale."),
    "impulse-noise": (impulse_noise, (0.02, 0.05, 0.09, 0.15, 0.24), True,
                      "Salt and pepper on 2 % .. 24 % of channel values."),
    "speckle-noise": (speckle_noise, (0.12, 0.20, 0.30, 0.45, 0.60), True,
                      "Multiplicative Gaussian noise, sigma 0.12 .. 0.6."),
    "defocus-blur": (defocus_blur, (2.5, 3.5, 5.0, 7.0, 9.0), False,
                     "Out-of-focus disk blur, radius 2.5 .. 9 px at 224² (scaled)."),
    "gaussian-blur": (gaussian_blur_c, (1.0, 2.0, 3.0, 4.0, 6.0), False,
                      "Gaussian blur, sigma 1 .. 6 px at 224² (scaled)."),
    "frost": (frost, ((1.0, 0.3), (0.9, 0.45), (0.8, 0.6), (0.7, 0.75), (0.6, 0.9)), True,
              "Procedural frost (ridged fractal noise, bluish white) blended over the picture."),
    "fog": (fog, ((1.0, 0.5), (1.5, 0.5), (2.0, 0.58), (2.5, 0.65), (3.0, 0.7)), True,
            "Procedural fog (fractal value noise) added, then the range restored."),
    "brightness": (brightness, (0.1, 0.2, 0.3, 0.4, 0.5), False, "HSV value raised by 0.1 .. 0.5."),
    "contrast": (contrast, (0.45, 0.33, 0.22, 0.12, 0.06), False,
                 "Contrast about each channel's mean reduced to 0.45 .. 0.06."),
    "elastic-transform": (elastic, ((0.015, 4), (0.025, 4), (0.03, 5), (0.04, 5), (0.05, 5)), True,
                          "Smooth random warp of up to 1.5 % .. 5 % of the shorter side."),
    "pixelate": (pixelate, (0.6, 0.5, 0.4, 0.3, 0.25), False,
                 "Box-downscaled to 0.6 .. 0.25 of each side, then enlarged with nearest neighbour."),
    "jpeg-compression": (jpeg_compression, (30, 20, 15, 10, 7), False, "JPEG at quality 30 .. 7."),
    "spatter": (spatter, ((0.1, 6, "water"), (0.16, 6, "water"), (0.24, 5, "water"), (0.12, 5, "mud"),
                          (0.2, 4, "mud")), True,
                "Procedural drops: water (1-3) blurs and tints 10 % .. 24 % of the picture, mud (4-5) hides it."),
    "saturate": (saturate, ((0.35, 0.0), (0.12, 0.0), (2.0, 0.0), (4.0, 0.1), (12.0, 0.15)), False,
                 "HSV saturation scaled: 1-2 wash colour out, 3-5 push it to the limit."),
    "glass-blur": (glass_blur, ((0.7, 1.5, 1), (0.9, 2, 2), (1.0, 3, 2), (1.2, 4, 2), (1.5, 5, 3)), True,
                   "Frosted glass: blur, local pixel jitter of 1.5 .. 5 px at 224² (scaled), blur."),
    "motion-blur": (motion_blur, ((8, 4), (12, 6), (16, 8), (20, 10), (26, 13)), True,
                    "Linear motion streak of 8 .. 26 px at 224² (scaled), random angle in [-45°, 45°]."),
    "zoom-blur": (zoom_blur, ((1.10, 0.01), (1.16, 0.02), (1.22, 0.02), (1.28, 0.03), (1.34, 0.03)), False,
                  "Mean of centre zooms up to 1.10 .. 1.34 times."),
    "snow": (snow, ((0.03, 3, 6, 0.1), (0.05, 3, 8, 0.2), (0.08, 4, 10, 0.3), (0.11, 4, 12, 0.35),
                    (0.15, 5, 14, 0.45)), True,
             "Procedural falling snow (two flake layers, streaked) over a whitened picture."),
}

PREFIX = "corrupt-"
#: The JPEG qualities of ``jpeg-compression`` at severities 1..5.
JPEG_QUALITIES: tuple[int, ...] = tuple(_TABLE["jpeg-compression"][1])


class Corruption(Operation):
    """One ImageNet-C-style corruption; ``severity`` picks a row of its table."""

    parameters = {"severity": 3}

    def __init__(self, short_name: str) -> None:
        function, levels, draws, description = _TABLE[short_name]
        self.name = PREFIX + short_name
        self.description = f"{description} Severity 1..5."
        self.function = function
        self.levels = tuple(levels)
        self.severity_levels = self.levels
        self.draws_from_rng = draws

    def level(self, severity: Any) -> Level:
        """The table row for ``severity``."""
        return self.levels[self.number("severity", severity, 1, 5, integer=True) - 1]

    def perturb(self, image: Image.Image, rng: np.random.Generator, severity: Any = 3, **_: Any) -> Image.Image:
        out = self.function(image, rng, self.level(severity))
        return out if isinstance(out, Image.Image) else to_image(out)


CORRUPTIONS: dict[str, Corruption] = {PREFIX + n: Corruption(n) for n in _TABLE}

# The corruption sets are the public API's (vestige.plugin.augment); this plugin provides every operation they name.
_missing = sorted(set(SEEN_CORRUPTIONS + UNSEEN_CORRUPTIONS) - set(CORRUPTIONS))
if _missing:
    raise PluginError(f"the corruption sets of vestige.plugin.augment name operations this plugin lacks: {_missing}")


def random_corruption(image: Image.Image, rng: np.random.Generator, *, names: Sequence[str] = SEEN_CORRUPTIONS,
                      severities: Sequence[int] = SEVERITIES) -> tuple[Image.Image, dict[str, Any]]:
    """Apply one of this plugin's corruptions and a severity drawn from ``rng``; return the image and its op
    record (:func:`vestige.plugin.augment.random_corruption` over :data:`CORRUPTIONS`)."""
    return augment_mod.random_corruption(image, rng, operations=CORRUPTIONS, names=names, severities=severities)


def augment(image: Image.Image, rng: np.random.Generator, *, p: float = REPMIX_PROBABILITY,
            names: Sequence[str] = SEEN_CORRUPTIONS) -> Image.Image:
    """RepMix's training augmentation over this plugin's corruptions (:func:`vestige.plugin.augment.corruption_augment`)."""
    return augment_mod.corruption_augment(image, rng, operations=CORRUPTIONS, p=p, names=names)
