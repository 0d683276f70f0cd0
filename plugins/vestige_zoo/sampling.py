"""Sampling zoo generators: seeded latents, class labels, PNG files and sample grids.

A sample is a deterministic function of (model, seed, index, class): the
latents for a seed are drawn at once from a CPU generator seeded with it,
and the generators are per-sample (eval-mode batch norm, noise derived from
the latent, deterministic DDIM), so batching does not change what is drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from vestige.plugin.cifar import CLASSES, class_index
from vestige_zoo.catalog import get_model


def latents(shape: tuple[int, ...], n: int, seed: int) -> torch.Tensor:
    """``n`` standard normal latents of ``shape`` for ``seed``, drawn on the CPU."""
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def class_labels(n: int, class_name: str | None = None) -> torch.Tensor:
    """``n`` class indices: all ``class_name``, or cycling through the ten classes."""
    if class_name is not None:
        return torch.full((n,), class_index(class_name), dtype=torch.long)
    return torch.arange(n) % len(CLASSES)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """N×3×H×W in [-1, 1] -> N×H×W×3 uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, y: torch.Tensor, batch_size: int = 100, device: str = "cpu") -> torch.Tensor:
    """Run ``generator`` over (z, y) in batches; images N×3×32×32 in [-1, 1] on the CPU."""
    generator = generator.to(device).eval()
    parts = [generator(z[i:i + batch_size].to(device), y[i:i + batch_size].to(device)).float().cpu()
             for i in range(0, len(z), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0, 3, 32, 32)


def sample_images(name: str, generator: nn.Module, n: int, seed: int, class_name: str | None = None,
                  batch_size: int = 100, device: str = "cpu") -> tuple[np.ndarray, torch.Tensor]:
    """``n`` samples of zoo model ``name`` as N×32×32×3 uint8, and their class labels."""
    y = class_labels(n, class_name)
    z = latents(get_model(name).latent_shape, n, seed)
    return to_uint8(generate(generator, z, y, batch_size, device)), y


def write_pngs(images: np.ndarray, labels: torch.Tensor, out: Path, prefix: str) -> list[Path]:
    """Write each image as ``<prefix>-<index>-<class>.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (pixels, label) in enumerate(zip(images, labels.tolist())):
        path = out / f"{prefix}-{i:05d}-{CLASSES[label]}.png"
        Image.fromarray(pixels).save(path, optimize=True)
        paths.append(path)
    return paths


def grid(images: np.ndarray, columns: int, pad: int = 2) -> Image.Image:
    """Tile N×H×W×3 images row by row, ``columns`` per row, on a white background."""
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i, pixels in enumerate(images):
        r, c = divmod(i, columns)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = pixels
    return Image.fromarray(canvas)


def class_grid(name: str, generator: nn.Module, per_class: int = 10, seed: int = 0) -> Image.Image:
    """One row per class (airplane at the top), ``per_class`` samples each."""
    n = per_class * len(CLASSES)
    y = torch.arange(n) // per_class
    z = latents(get_model(name).latent_shape, n, seed)
    return grid(to_uint8(generate(generator, z, y)), per_class)
