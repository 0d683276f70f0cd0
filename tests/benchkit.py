"""Small real detectors and a source folder for the dataset and harness tests.

``MeanColourDetector`` learns each source's mean colour and names the nearest:
crude, but it must beat chance on sources that differ in colour.
``FormatOnlyDetector`` sees everything about a file except its pixels
(container, mode, size, metadata keys, PNG chunk layout, JPEG tables, ICC
profile) and learns the majority source per format signature: on a dataset
whose format is no cue it can only score at chance. ``ColourVerifier`` is the
verification counterpart of the mean-colour detector.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from vestige.plugin import Detector, Finding, ImageInput, hookimpl
from vestige.plugin.training import (
    REAL, ArtifactFile, TrainableDetector, TrainedModel, TrainingSet, TrainOption, pack_artifact,
)

from conftest import photo

SOURCES = ("real", "gen-a", "gen-b")
TINTS = {"real": (0, 0, 0), "gen-a": (-60, -20, 70), "gen-b": (70, -30, -50)}


def source_image(source: str, seed: int, size: int = 32) -> Image.Image:
    """A photo-like picture; each generator adds its colour cast and a texture of its own."""
    pixels = np.asarray(photo(seed, size), dtype=np.float32) * 0.6 + 40
    pixels += np.array(TINTS[source], dtype=np.float32)
    if source == "gen-a":
        pixels[::2, ::2] += 12  # a checkerboard, as transposed convolutions leave
    if source == "gen-b":
        pixels += np.random.default_rng(seed).normal(0, 8, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_source_folder(root: Path, per_source: int = 30, size: int = 32) -> Path:
    """``root/<source>/`` files, each source in its own container so the *input* format is a perfect cue."""
    for source in SOURCES:
        folder = root / source
        folder.mkdir(parents=True)
        for i in range(per_source):
            image = source_image(source, 1000 * SOURCES.index(source) + i, size)
            if source == "real":
                exif = Image.Exif()
                exif[0x0110] = "Test Camera"  # Model
                image.save(folder / f"IMG_{i:04d}.jpg", quality=92, exif=exif.tobytes())
            elif source == "gen-a":
                info = PngImagePlugin.PngInfo()
                info.add_text("parameters", "steps: 20, sampler: test")
                image.save(folder / f"sample-{i}.png", pnginfo=info)
            else:
                image.save(folder / f"out{i}.webp", lossless=True)
    return root


def format_signature(item: ImageInput) -> str:
    """Everything about the file but its pixel values."""
    with Image.open(io.BytesIO(item.data)) as image:
        fields: dict[str, Any] = {"format": item.format, "mode": image.mode, "size": image.size,
                                  "info": sorted(k for k in image.info if isinstance(k, str)),
                                  "metadata": sorted(item.metadata), "icc": bool(image.info.get("icc_profile"))}
        if item.format == "JPEG":
            fields["tables"] = {str(k): list(v) for k, v in getattr(image, "quantization", {}).items()}
    if item.format == "PNG":
        fields["chunks"] = _png_chunks(item.data)
    return json.dumps(fields, sort_keys=True, default=str)


def _png_chunks(data: bytes) -> list[str]:
    """Chunk types in order (runs of IDAT as one) and the IHDR fields."""
    chunks, offset = [], 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        name = kind.decode("latin-1")
        if name == "IHDR":
            name += ":" + data[offset + 16:offset + 21].hex()  # bit depth, colour type, compression, filter, interlace
        if not (chunks and chunks[-1] == name == "IDAT"):
            chunks.append(name)
        offset += 12 + length
    return chunks


class _Trainable(TrainableDetector):
    version = "1"
    batch_size = 16

    def use_artifact(self, artifact: ArtifactFile) -> None:
        self._artifact = artifact

    def augmentation_domain(self) -> Mapping[str, Any]:
        # These detectors look at mean colour or the container, not at pixel-level traces, so they are
        # validated on any scale down to the re-shared copies' (0.75): their domain admits it.
        return {"scale_range": (0.5, 1.0)}

    def _pack(self, tensors: Mapping[str, np.ndarray], info: Mapping[str, Any], metrics: Mapping[str, Any]) -> TrainedModel:
        return TrainedModel(pack_artifact(tensors, detector=self.name, version=self.version, info=info), metrics=metrics)


class MeanColourDetector(_Trainable):
    """Attribution by the nearest mean colour of each source's training images."""

    name = "test-mean-colour"
    kind = "attribution"
    train_options = (TrainOption("augment", bool, False, "Corrupt each training image once more (seen corruptions)."),)

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        rng = np.random.default_rng(seed)
        pictures = [(e.image.image, e.source) for e in data.train]
        if (options or {}).get("augment") and data.augment is not None:
            pictures += [(data.augment(image, rng), source) for image, source in pictures]
        means = np.stack([np.mean([_mean(p) for p, s in pictures if s == source], axis=0) for source in data.sources])
        if progress:
            progress(f"{len(pictures)} pictures averaged")
        predicted = [data.sources[int(np.argmin(np.linalg.norm(means - _mean(e.image.image), axis=1)))] for e in data.validation]
        accuracy = float(np.mean([p == e.source for p, e in zip(predicted, data.validation)])) if data.validation else None
        return self._pack({"means": means.astype(np.float32)}, {"sources": list(data.sources)}, {"accuracy": accuracy})

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        artifact = self.require_artifact()
        means, sources = artifact.tensors()["means"], artifact.info["sources"]
        findings = []
        for item in batch:
            distance = np.linalg.norm(means - _mean(item.image), axis=1)
            best = sources[int(np.argmin(distance))]
            weights = np.exp(-(distance - distance.min()) / 10)
            findings.append(self.finding(label="real" if best == REAL else "synthetic",
                                         source=None if best == REAL else best,
                                         scores={s: float(w) for s, w in zip(sources, weights / weights.sum())}))
        return findings


class FormatOnlyDetector(_Trainable):
    """Attribution by file format alone: the majority training source of each format signature."""

    name = "test-format-only"
    kind = "attribution"

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        votes: dict[str, Counter] = {}
        for example in data.train:
            votes.setdefault(format_signature(example.image), Counter())[example.source] += 1
        overall = Counter(e.source for e in data.train)
        table = {sig: max(sorted(c), key=lambda s: c[s]) for sig, c in votes.items()}
        default = max(sorted(overall), key=lambda s: overall[s])
        return self._pack({"signatures": np.array([len(table)], dtype=np.int64)}, {"table": table, "default": default},
                          {"signatures": len(table)})

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        info = self.require_artifact().info
        out = []
        for item in batch:
            source = info["table"].get(format_signature(item), info["default"])
            out.append(self.finding(label="real" if source == REAL else "synthetic", source=None if source == REAL else source))
        return out


class ColourVerifier(_Trainable):
    """Verification by colour: a generator claims an image within its own images' distance of its mean colour."""

    name = "test-colour-verifier"
    kind = "verification"

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        generators = [s for s in data.sources if s != REAL]
        means, radii = [], []
        for g in generators:
            own = np.array([_mean(e.image.image) for e in data.train if e.source == g])
            means.append(own.mean(0))
            radii.append(np.quantile(np.linalg.norm(own - own.mean(0), axis=1), 0.95))  # calibrated: 95 % of its own
        return self._pack({"means": np.array(means, np.float32), "radii": np.array(radii, np.float32)},
                          {"generators": generators}, {})

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        artifact = self.require_artifact()
        tensors, generators = artifact.tensors(), artifact.info["generators"]
        out = []
        for item in batch:
            distance = np.linalg.norm(tensors["means"] - _mean(item.image), axis=1)
            inside = [(d, g) for d, r, g in zip(distance, tensors["radii"], generators) if d <= r]
            source = min(inside)[1] if inside else None
            out.append(self.finding(label="synthetic" if source else "unknown", source=source,
                                    scores={g: float(-d) for g, d in zip(generators, distance)}))
        return out


class BrokenDetector(Detector):
    """Raises on every batch: the harness must count its images as wrong and go on."""

    name = "test-broken"
    version = "1"
    kind = "attribution"

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        raise RuntimeError("this detector always fails")


def _mean(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(0)


@hookimpl
def vestige_detectors() -> list[Detector]:
    return [MeanColourDetector(), FormatOnlyDetector(), ColourVerifier(), BrokenDetector()]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
