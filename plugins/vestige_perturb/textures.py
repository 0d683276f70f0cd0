"""Procedural textures standing in for ImageNet-C's photographs of frost, and for its fog, snow and spatter layers.

ImageNet-C overlays crops of six frost photographs; Vestige ships no texture
files, so frost, like fog, snow and spatter, is drawn from the operation's
random generator: fractal value noise (octaves of bicubically enlarged random
grids), shaped per effect. All textures are (height, width) float32 arrays.
"""

from __future__ import annotations

import math

import numpy as np

from vestige_perturb.filters import convolve, line_kernel, resize_plane


def fractal_noise(rng: np.random.Generator, height: int, width: int, *, cells: int = 2,
                  persistence: float = 0.5, octaves: int | None = None) -> np.ndarray:
    """Value noise in [0, 1]: octave k is a random grid of ``cells·2^k`` cells with weight ``persistence^k``.

    Without ``octaves``, octaves are added until a cell is about a pixel
    (at most 8), so small and large images get the same look.
    """
    if octaves is None:
        octaves = min(8, max(1, math.ceil(math.log2(max(height, width) / cells)) + 1))
    total = np.zeros((height, width), np.float32)
    weight = 1.0
    for k in range(octaves):
        n = cells * 2**k
        total += weight * resize_plane(rng.random((n + 1, n + 1), dtype=np.float32), width, height)
        weight *= persistence
    low, high = float(total.min()), float(total.max())
    return (total - low) / (high - low) if high > low else np.full_like(total, 0.5)


def frost_layer(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Frost on a window: bright ridged veins over a milky, uneven film, bluish white; (h, w, 3)."""
    ridges = 1.0 - np.abs(2.0 * fractal_noise(rng, height, width, cells=3, persistence=0.65) - 1.0)
    veins = ridges**6
    film = fractal_noise(rng, height, width, cells=2, persistence=0.5)
    sparkle = rng.random((height, width), dtype=np.float32) ** 12
    grey = np.clip(0.35 * film + 0.75 * veins + 0.3 * sparkle, 0.0, 1.0)
    return grey[..., None] * np.array([0.86, 0.93, 1.0], np.float32)


def fog_layer(rng: np.random.Generator, height: int, width: int, *, persistence: float) -> np.ndarray:
    """Patchy haze: low-frequency fractal noise, rougher for a higher ``persistence``."""
    return fractal_noise(rng, height, width, cells=1, persistence=persistence)


def snow_layer(rng: np.random.Generator, height: int, width: int, *, density: float, flake: float,
               streak: float, angle: float) -> np.ndarray:
    """Falling snow: sparse bright flakes ``flake`` pixels wide, drawn out ``streak`` pixels along ``angle``.

    ``density`` is the fraction of the flake grid that holds a flake.
    """
    gh, gw = max(2, round(height / flake)), max(2, round(width / flake))
    flakes = (rng.random((gh, gw), dtype=np.float32) < density) * rng.uniform(0.6, 1.0, (gh, gw)).astype(np.float32)
    layer = np.clip(resize_plane(flakes, width, height), 0.0, 1.0)
    if streak >= 1.0:
        layer = convolve(layer[..., None], line_kernel(streak, streak / 2, angle))[..., 0]
        layer = layer / max(float(layer.max()), 1e-6) * float(flakes.max(initial=0.0))
    return layer


def splash_mask(rng: np.random.Generator, height: int, width: int, *, coverage: float, cells: int) -> np.ndarray:
    """Soft-edged drops covering about ``coverage`` of the image, blobs of about ``height / cells`` pixels."""
    field = fractal_noise(rng, height, width, cells=cells, persistence=0.45)
    threshold = float(np.quantile(field, 1.0 - coverage))
    return np.clip((field - threshold) / 0.06, 0.0, 1.0)
