"""CIFAR-10 read straight from its zip: the class names and the splits as uint8 tensors.

The zip holds ``train/<class>/NNNN.jpg`` and ``test/<class>/NNNN.jpg``. Nothing
is extracted: images are decoded from the archive once and the decoded split is
cached as a ``.npz`` under a cache folder (``/tmp`` by default), keyed by the
zip's SHA-256, so a second training run starts in seconds.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vestige.plugin import InvalidInputError
from vestige.plugin.weightfiles import file_sha256

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class CifarSplit:
    """One split of CIFAR-10: ``images`` N×3×32×32 uint8 and ``labels`` N int64 class indices."""

    images: np.ndarray
    labels: np.ndarray


def class_index(name: str) -> int:
    """The index of a CIFAR-10 class name; an unknown name is refused with the valid ones."""
    if name not in CLASSES:
        raise InvalidInputError(f"unknown CIFAR-10 class {name!r}; use one of {', '.join(CLASSES)}.")
    return CLASSES.index(name)


def default_cache_dir() -> Path:
    """Where decoded splits are cached: ``$VESTIGE_ZOO_CACHE`` or a folder in the system temp dir."""
    return Path(os.environ.get("VESTIGE_ZOO_CACHE") or Path(tempfile.gettempdir()) / "vestige-zoo-cache")


def _decode_split(archive: zipfile.ZipFile, split: str) -> CifarSplit:
    names = sorted(n for n in archive.namelist() if n.startswith(f"{split}/") and n.lower().endswith((".jpg", ".jpeg", ".png")))
    if not names:
        raise InvalidInputError(f"the archive has no {split}/<class>/*.jpg images; give the CIFAR-10 zip with train/ and test/ folders.")
    images = np.empty((len(names), 3, 32, 32), dtype=np.uint8)
    labels = np.empty(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        label = class_index(name.split("/")[1])
        with Image.open(io.BytesIO(archive.read(name))) as img:
            rgb = img.convert("RGB")
            if rgb.size != (32, 32):
                rgb = rgb.resize((32, 32), Image.BICUBIC)
            images[i] = np.asarray(rgb).transpose(2, 0, 1)
        labels[i] = label
    return CifarSplit(images, labels)


def load_split(zip_path: str | Path, split: str = "train", cache_dir: Path | None = None) -> CifarSplit:
    """Decode ``split`` of the CIFAR-10 zip at ``zip_path``, through the cache."""
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    path = Path(zip_path)
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist; give the path of the CIFAR-10 zip (train/ and test/ folders of JPEGs).")
    cache = (cache_dir or default_cache_dir()) / f"cifar10-{file_sha256(path)[:16]}-{split}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return CifarSplit(data["images"], data["labels"])
    try:
        with zipfile.ZipFile(path) as archive:
            result = _decode_split(archive, split)
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"{path} is not a readable zip archive ({exc}); give the CIFAR-10 zip.") from exc
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez(partial, images=result.images, labels=result.labels)
    partial.replace(cache)
    return result
