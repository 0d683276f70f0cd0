"""The reference manifold: a finite set of a lab's real images, kept as 32×32 uint8 pixels.

A reference is stored as uint8 RGB whatever the space: 3,072 bytes an image,
and it is what a reviewer is shown as "the nearest real image". Its
representation in a space (spectra, classifier features) is computed when a
detector loads it, and cached per space.

A reference can be its own registry artifact (``vestige manifpt reference
--images DIR``): a safetensors file with the Vestige header of detector
``manifpt`` and ``info.kind = "reference"``, holding ``reference.pixels``
(N×32×32×3 uint8) and ``reference.sha256`` (N×32 uint8: the SHA-256 of each
source file, so a finding can name the file its nearest reference came from).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vestige.plugin import VestigeError

FORMAT = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class ReferenceError(VestigeError):
    """A reference folder or file that cannot serve as the manifold."""

    status = 422


def pixel_digest(pixels: np.ndarray) -> str:
    """SHA-256 of one 32×32×3 uint8 image's pixel bytes (how "the same image" is recognised after decoding)."""
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


@dataclass
class Reference:
    """N reference images (``pixels`` N×32×32×3 uint8) and their source files' SHA-256 (N×32 uint8)."""

    pixels: np.ndarray
    sha256: np.ndarray
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4 or self.pixels.shape[1:] != (32, 32, 3) or self.pixels.dtype != np.uint8:
            raise ReferenceError("a reference holds N×32×32×3 uint8 pixels")
        if len(self.pixels) == 0:
            raise ReferenceError("the reference has no images; give a folder of real images")
        if self.sha256.shape != (len(self.pixels), 32):
            raise ReferenceError("a reference needs one SHA-256 per image")

    def __len__(self) -> int:
        return len(self.pixels)

    def file_sha256(self, index: int) -> str:
        return bytes(self.sha256[index]).hex()

    def pixel_digests(self) -> set[str]:
        return {pixel_digest(p) for p in self.pixels}

    def file_digests(self) -> set[str]:
        return {bytes(row).hex() for row in self.sha256}

    def space(self, space: str, device: str = "cpu") -> tuple[Any, Any]:
        """The reference in ``space`` (uint8 pixels, or fp16 spectra / features) and its float64 squared norms, once per space."""
        key = (space, str(device))
        if key not in self._cache:
            import torch

            from vestige_manifpt.spaces import representation

            rep = representation(self.pixels, space, device="cpu")
            if rep.is_floating_point():
                rep = rep.to(torch.float16)  # half the memory; the search measures distances to these values
            flat = rep.reshape(len(rep), -1).to(torch.float64)
            norms = (flat * flat).sum(1)
            self._cache[key] = (rep.to(device), norms)
        return self._cache[key]

    def tensors(self, prefix: str = "reference.") -> dict[str, np.ndarray]:
        return {prefix + "pixels": self.pixels, prefix + "sha256": self.sha256}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], prefix: str = "reference.") -> Reference:
        try:
            return cls(np.asarray(tensors[prefix + "pixels"]), np.asarray(tensors[prefix + "sha256"]))
        except KeyError:
            raise ReferenceError("the artifact holds no reference images (reference.pixels)") from None


def from_images(images: Sequence[Any]) -> Reference:
    """A reference from :class:`~vestige.plugin.ImageInput`\\ s (their decoded pictures and file hashes)."""
    from vestige_manifpt.spaces import stack

    pixels = stack([item.image for item in images])
    sha = np.stack([np.frombuffer(bytes.fromhex(item.sha256), dtype=np.uint8) for item in images]) if images else \
        np.zeros((0, 32), dtype=np.uint8)
    return Reference(pixels, sha)


def folder_images(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively), in path order."""
    if not folder.is_dir():
        raise ReferenceError(f"{folder} is not a folder; give a folder of the lab's real images")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ReferenceError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def pack(reference: Reference, *, version: str, info: dict[str, Any]) -> bytes:
    """A reference artifact's bytes (same reference and info, same bytes)."""
    from vestige.plugin.training import pack_artifact

    return pack_artifact(reference.tensors(), detector="manifpt", version=version,
                         info={"kind": "reference", "format": FORMAT, "images": len(reference), **info})


def unpack(artifact: Any) -> Reference:
    """The reference inside a reference artifact (an :class:`~vestige.plugin.training.ArtifactFile`)."""
    if artifact.detector != "manifpt" or artifact.info.get("kind") != "reference":
        raise ReferenceError(f"artifact {artifact.sha256[:12]} is not a ManiFPT reference "
                             f"(detector {artifact.detector}, kind {artifact.info.get('kind')!r}); "
                             "build one with `vestige manifpt reference --images DIR`")
    return Reference.from_tensors(artifact.tensors())
