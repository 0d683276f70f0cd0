"""Negatives for a calibration: images the generator did not make, at its output size.

- Real photographs, from every source there is, taken in turn: a folder the
  lab gives (``--negatives DIR``), the CIFAR-10 zip's *train* split (the
  evaluation uses its test split), and crops of the photographs scikit-image
  bundles (at several scales, so a photograph gives many negatives).
- Samples of every other registered generator whose output has the same
  size, quantised to 8 bits as a saved PNG would be.

All choices are deterministic for a seed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vestige.plugin import GeneratorSpec, InvalidInputError, reference_photographs

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Families not sampled for negatives (a diffusion sample costs many network evaluations).
SLOW_FAMILIES = ("diffusion",)


@dataclass
class Negatives:
    """N×C×H×W images in [-1, 1] and, for each, its kind: ``real`` or the generator that made it."""

    images: torch.Tensor
    kinds: list[str]
    sources: Mapping[str, int]

    def __len__(self) -> int:
        return len(self.kinds)


def _folder_pictures(folder: Path) -> list[Image.Image]:
    if not folder.is_dir():
        raise InvalidInputError(f"--negatives {folder} is not a folder; give a folder of photographs")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InvalidInputError(f"--negatives {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    pictures = []
    for path in paths:
        with Image.open(path) as image:
            pictures.append(image.convert("RGB"))
    return pictures


def _zip_pictures(path: Path, n: int) -> list[Image.Image]:
    """``n`` images spread over the zip's ``train/`` folder (sorted, so over its classes)."""
    with zipfile.ZipFile(path) as archive:
        names = sorted(m for m in archive.namelist() if m.startswith("train/") and m.lower().endswith(IMAGE_SUFFIXES))
        if not names:
            return []
        out = []
        for i in np.linspace(0, len(names) - 1, min(n, len(names))).round().astype(int):
            with archive.open(names[i]) as fh, Image.open(fh) as image:
                out.append(image.convert("RGB"))
        return out


def _crops(pictures: Sequence[Image.Image], n: int, seed: int) -> list[Image.Image]:
    """``n`` square crops of random side (an eighth of the picture up to all of it) at random places."""
    if not pictures:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        picture = pictures[k % len(pictures)]
        short = min(picture.size)
        side = int(rng.integers(max(8, short // 8), short + 1))
        x = int(rng.integers(0, picture.width - side + 1))
        y = int(rng.integers(0, picture.height - side + 1))
        out.append(picture.crop((x, y, x + side, y + side)))
    return out


def real_photographs(n: int, *, folder: Path | None, data: Path | None, seed: int) -> tuple[list[Image.Image], dict[str, int]]:
    """``n`` real photographs, taken in turn from the folder, the CIFAR-10 zip and scikit-image's photographs."""
    pools: dict[str, list[Image.Image]] = {}
    if folder is not None:
        own = _folder_pictures(folder)
        # A folder of large photographs gives crops; small ones are used whole.
        pools["folder"] = own if len(own) >= n else own + _crops(own, n - len(own), seed)
    if data is not None and data.is_file():
        pools["cifar10-train"] = _zip_pictures(data, n)
    pools["scikit-image"] = _crops(list(reference_photographs().values()), n, seed)
    pools = {k: v for k, v in pools.items() if v}
    if not pools:
        raise InvalidInputError("no real photographs for the calibration's negatives: give --negatives DIR "
                                "(a folder of photographs) or install scikit-image")
    chosen: list[Image.Image] = []
    counts = dict.fromkeys(pools, 0)
    while len(chosen) < n and any(counts[k] < len(pools[k]) for k in pools):
        for name, pool in pools.items():
            if len(chosen) < n and counts[name] < len(pool):
                chosen.append(pool[counts[name]])
                counts[name] += 1
    return chosen, {k: v for k, v in counts.items() if v}


def gather(target: object, specs: Mapping[str, GeneratorSpec], *, n_real: int, n_per_generator: int,
           folder: Path | None, data: Path | None, seed: int, load: Callable[[GeneratorSpec], object]) -> Negatives:
    """The negatives for loaded generator ``target`` (a ``LoadedGenerator``); ``load`` loads another spec."""
    pictures, sources = real_photographs(n_real, folder=folder, data=data, seed=seed)
    parts = [target.targets(pictures)]  # type: ignore[attr-defined]
    kinds = ["real"] * len(pictures)
    counts = {f"real:{k}": v for k, v in sources.items()}
    if n_per_generator:
        for name in sorted(specs):
            spec = specs[name]
            if name == target.name or str(spec.metadata.get("family", "")).lower() in SLOW_FAMILIES:  # type: ignore[attr-defined]
                continue
            other = load(spec)
            if other.output_shape != target.output_shape:  # type: ignore[attr-defined]
                continue
            images, _ = other.sample(n_per_generator, seed)  # type: ignore[attr-defined]
            parts.append(images)
            kinds += [name] * len(images)
            counts[name] = len(images)
    return Negatives(torch.cat(parts), kinds, counts)
