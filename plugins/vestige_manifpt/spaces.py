"""The three spaces the nearest reference is looked for in, and the artifact each gives.

* ``rgb``: the pixels themselves (searched as uint8, 3,072 values); the
  artifact is ``x − proj(x)`` in [-1, 1], a 3×32×32 picture.
* ``freq``: per-channel log-magnitude spectrum ``log(|FFT2(x)| + ε)`` of the
  image in [0, 1] (3×32×32); the artifact is the difference of spectra.
* ``sl``: the pooled penultimate features of the zoo's CIFAR-10 classifier
  (128 values; lent by the zoo plugin through the ``vestige_networks`` hook, loaded hash-verified); the artifact is
  the 128-value difference of features, which an MLP attributes.

Every image is brought to 32×32 RGB first (bicubic when it is not already
that size; the finding says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

SPACES = ("rgb", "freq", "sl")
SIZE = 32
#: Added to the FFT magnitude before the log, so a zero coefficient stays finite.
FREQ_EPSILON = 1e-2
#: Images pushed through the classifier at once (bounded memory for large references).
SL_BATCH = 512

_classifier: Any = None


def prepare(image: Image.Image) -> tuple[np.ndarray, dict[str, Any]]:
    """A 32×32×3 uint8 array of ``image``, and a note of what was done to get it."""
    rgb = image.convert("RGB")
    note: dict[str, Any] = {"width": rgb.width, "height": rgb.height, "resized": False}
    if rgb.size != (SIZE, SIZE):
        rgb = rgb.resize((SIZE, SIZE), Image.BICUBIC)
        note["resized"] = True
    return np.asarray(rgb, dtype=np.uint8), note


def stack(images: Sequence[Image.Image]) -> np.ndarray:
    """N×32×32×3 uint8 of ``images``."""
    if not images:
        return np.zeros((0, SIZE, SIZE, 3), dtype=np.uint8)
    return np.stack([prepare(im)[0] for im in images])


def classifier() -> torch.nn.Module:
    """The zoo's CIFAR-10 classifier (lent through ``vestige_networks``), verified against its shipped SHA-256,
    loaded once per process."""
    global _classifier
    if _classifier is None:
        from vestige.plugin.services import load_network

        _classifier = load_network("cifar10-classifier")
    return _classifier


def representation(pixels: np.ndarray | torch.Tensor, space: str, device: str = "cpu") -> torch.Tensor:
    """What the search compares: uint8 N×3×32×32 for rgb, float32 N×3×32×32 (freq) or N×128 (sl)."""
    x = torch.as_tensor(np.ascontiguousarray(pixels)) if isinstance(pixels, np.ndarray) else pixels
    x = x.permute(0, 3, 1, 2).contiguous()
    if space == "rgb":
        return x
    if space == "freq":
        out = []
        for start in range(0, len(x), SL_BATCH):
            part = x[start : start + SL_BATCH].to(device=device, dtype=torch.float32) / 255.0
            out.append(torch.log(torch.fft.fft2(part).abs() + FREQ_EPSILON).cpu())
        return torch.cat(out) if out else torch.zeros((0, 3, SIZE, SIZE))
    if space == "sl":
        net = classifier().to(device)
        out = []
        with torch.no_grad():
            for start in range(0, len(x), SL_BATCH):
                part = x[start : start + SL_BATCH].to(device=device, dtype=torch.float32) / 127.5 - 1.0
                out.append(net.features(part).float().cpu())
        return torch.cat(out) if out else torch.zeros((0, 128))
    raise ValueError(f"unknown space {space!r}; use one of {', '.join(SPACES)}")


def artifact(query: torch.Tensor, nearest: torch.Tensor, space: str) -> torch.Tensor:
    """The deviation from the manifold in ``space``: query minus its nearest reference (float32)."""
    diff = query.to(torch.float32) - nearest.to(torch.float32)
    return diff / 255.0 if space == "rgb" else diff


def is_picture(space: str) -> bool:
    """Whether the space's artifact is a 3×32×32 picture (a CNN attributes it) or a vector (an MLP does)."""
    return space in ("rgb", "freq")
