"""The image-level calibration of tiled findings, fitted on a lab's full-size reference images (docs/tiles.md).

A model's thresholds were set on whole images of its training size; the
mean of a larger image's tiles (:mod:`vestige.analysis.tiles`) needs its own. This
module fits it, ``domain["tiles"]`` in the artifact:

- ``threshold``: the open-set threshold, the model's own (a tiled image's
  probability is on one tile's scale);
- ``accusation_threshold``: strictly above the ``1 − rate`` quantile of the
  image-level P(synthetic) of the *fit* folder's real images inside the
  domain, so at most ``rate`` of them would be accused;
- ``test``: what the calibrated model then does with a *separate* folder of
  full-size images (``--test``), image by image through the whole pipeline:
  per source, correct, real accused, named another generator, inconclusive,
  and the tile-level accuracy of the in-domain tiles.

Folders follow the ``folders`` dataset convention: one sub-folder per source
(``real``, or the generator's name). The fit and test folders must hold
different images, ideally from different photographs and different sample
seeds (``vestige bench build tiles-dev`` makes such a pair).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vestige.analysis.detect import make_input, run_detector
from vestige.analysis.tiles import DEFAULT_MAX_TILES, RULE
from vestige.core.errors import InvalidInputError
from vestige.evidence.imagefile import IMAGE_SUFFIXES, ImageLimits
from vestige.models.domainfit import with_domain
from vestige.plugin import Finding, ImageInput, domain as dom
from vestige.plugin.training import REAL, ArtifactFile, TrainableDetector

TILES_FORMAT = "vestige-tiles/1"
Progress = Callable[[str], None]


def read_folder(folder: Path, limits: ImageLimits = ImageLimits()) -> list[tuple[str, ImageInput]]:
    """(source, image) for every image under ``folder``/<source>/, in name order; a one-line error for a folder
    without sources or a file that is not an acceptable image."""
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder of <source>/ sub-folders")
    out = []
    for source_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(p for p in source_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            out.append((source_dir.name, make_input(path.read_bytes(), name=str(path), limits=limits)))
    if not out:
        raise InvalidInputError(f"{folder} holds no images in <source>/ sub-folders (e.g. {folder}/real/a.png)")
    return out


def _p_synthetic(finding: Finding) -> float | None:
    return (finding.evidence.get("domain") or {}).get("p_synthetic")


def _tiled_inside(finding: Finding) -> bool:
    return "tiles" in finding.evidence and bool((finding.evidence.get("domain") or {}).get("in_domain"))


def fit_tiles(detector: TrainableDetector, images: Sequence[tuple[str, ImageInput]], *,
              accusation_rate: float = dom.ACCUSATION_RATE, max_tiles: int = DEFAULT_MAX_TILES,
              progress: Progress | None = None) -> dict[str, Any]:
    """The image-level calibration of the detector's artifact (which must not hold one yet) from ``images``."""
    say = progress or (lambda _: None)
    artifact = detector.require_artifact()
    if artifact.domain is None or detector.tile_side is None:
        raise InvalidInputError(f"{detector.name}'s model {artifact.sha256[:12]} has no validated domain with a tile "
                                "side; refit its domain first (`vestige models refit-domain`)")
    if not 0.0 < accusation_rate < 0.5:
        raise InvalidInputError(f"--accusation-rate must lie in (0, 0.5), not {accusation_rate}")
    unknown = sorted({s for s, _ in images} - set(detector.labels))
    if unknown:
        raise InvalidInputError(f"the fit folder has sources the model does not know: {', '.join(unknown)}")
    say(f"fit: {len(images)} images")
    findings = run_detector(detector, [item for _, item in images], max_tiles=max_tiles)
    real = [_p_synthetic(f) for (s, _), f in zip(images, findings) if s == REAL and _tiled_inside(f)]
    accuse_at = None
    if REAL in detector.labels:
        if not real:
            raise InvalidInputError("the fit folder has no real image large enough to tile and inside the domain: "
                                    "the accusation threshold needs some (real/ sub-folder, images larger than "
                                    f"{detector.tile_side}×{detector.tile_side})")
        accuse_at = float(np.nextafter(dom.quantile_threshold(np.array(real, dtype=np.float64), 1.0 - accusation_rate),
                                       np.inf))
    counts: dict[str, int] = {}
    for source, _ in images:
        counts[source] = counts.get(source, 0) + 1
    return {"format": TILES_FORMAT, "rule": RULE, "threshold": artifact.open_set_threshold,
            "accusation_threshold": accuse_at, "rate": accusation_rate, "max_tiles": max_tiles,
            "fit": {"images": counts, "real_tiled_inside": len(real),
                    "images_sha256": _images_sha256(images)}}


def with_tiles(artifact: ArtifactFile, record: Mapping[str, Any]) -> ArtifactFile:
    """``artifact`` with ``record`` as its image-level calibration (network and novelty model unchanged)."""
    from safetensors.numpy import load

    tensors = {k: v for k, v in load(artifact.data).items() if k.startswith(dom.TENSOR_PREFIX)}
    data = with_domain(artifact, {**dict(artifact.domain or {}), "tiles": dict(record)}, tensors)
    return ArtifactFile.from_bytes(data, origin=artifact.origin, name=f"{artifact.detector}'s tile-calibrated model")


def evaluate_tiles(detector: TrainableDetector, images: Sequence[tuple[str, ImageInput]], *,
                   max_tiles: int = DEFAULT_MAX_TILES) -> dict[str, Any]:
    """Image- and tile-level rates of the detector as it is (its artifact's calibration) on ``images``."""
    findings = run_detector(detector, [item for _, item in images], max_tiles=max_tiles)
    per_source: dict[str, dict[str, Any]] = {}
    for (truth, _), finding in zip(images, findings):
        row = per_source.setdefault(truth, {"images": 0, "tiled": 0, "correct": 0, "called_synthetic": 0,
                                            "named_other": 0, "inconclusive": 0, "tiles_inside": 0,
                                            "tiles_correct": 0})
        row["images"] += 1
        row["correct"] += (finding.label == "real" and truth == REAL) or \
            (finding.label == "synthetic" and finding.source == truth)
        row["called_synthetic"] += finding.label == "synthetic"
        row["named_other"] += finding.label == "synthetic" and finding.source not in (None, truth)
        row["inconclusive"] += finding.label == "unknown"
        tiles = finding.evidence.get("tiles")
        if tiles:
            row["tiled"] += 1
            for label, inside in zip(tiles["labels"], tiles["in_domain"]):
                row["tiles_inside"] += inside
                row["tiles_correct"] += inside and label == truth
    out: dict[str, Any] = {"images_sha256": _images_sha256(images), "sources": {}}
    for source, row in sorted(per_source.items()):
        n = row["images"]
        out["sources"][source] = {
            "images": n, "tiled": row["tiled"], "correct": row["correct"] / n,
            "called_synthetic": row["called_synthetic"] / n, "named_other": row["named_other"] / n,
            "inconclusive": row["inconclusive"] / n,
            "tile_accuracy": row["tiles_correct"] / row["tiles_inside"] if row["tiles_inside"] else None,
        }
    generated = [s for s in out["sources"] if s != REAL]
    total = sum(out["sources"][s]["images"] for s in generated)
    out["attribution"] = (sum(out["sources"][s]["correct"] * out["sources"][s]["images"] for s in generated) / total
                          if total else None)
    out["real_accused"] = out["sources"][REAL]["called_synthetic"] if REAL in out["sources"] else None
    return out


def _images_sha256(images: Sequence[tuple[str, ImageInput]]) -> str:
    """One hash naming the image set: each (source, image SHA-256), sorted."""
    lines = sorted(f"{source} {item.sha256}" for source, item in images)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def calibrate_tiles(detector: TrainableDetector, artifact: ArtifactFile, fit: Sequence[tuple[str, ImageInput]],
                    test: Sequence[tuple[str, ImageInput]] | None, *, accusation_rate: float = dom.ACCUSATION_RATE,
                    max_tiles: int = DEFAULT_MAX_TILES, command: str | None = None,
                    progress: Progress | None = None) -> ArtifactFile:
    """``artifact`` with an image-level calibration fitted on ``fit`` and measured on ``test``."""
    say = progress or (lambda _: None)
    base = dict(artifact.domain or {})
    base.pop("tiles", None)
    from safetensors.numpy import load

    tensors = {k: v for k, v in load(artifact.data).items() if k.startswith(dom.TENSOR_PREFIX)}
    bare = ArtifactFile.from_bytes(with_domain(artifact, base, tensors), origin=artifact.origin)
    detector.use_artifact(bare)
    detector.load("cpu")
    record = fit_tiles(detector, fit, accusation_rate=accusation_rate, max_tiles=max_tiles, progress=say)
    record["command"] = command
    calibrated = with_tiles(bare, record)
    if test:
        detector.use_artifact(calibrated)
        detector.load("cpu")
        say(f"test: {len(test)} images")
        record["test"] = evaluate_tiles(detector, test, max_tiles=max_tiles)
        calibrated = with_tiles(bare, record)
    return calibrated
