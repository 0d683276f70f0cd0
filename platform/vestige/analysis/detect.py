"""Running detectors on images, in this process.

:func:`run_detector` is the one place a detector is called: batching, timing,
and isolation (a detector that raises yields error findings for its batch,
never an exception that stops the other detectors). ``vestige detect`` uses
it directly; analysis workers use it per task.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vestige.analysis.tiles import DEFAULT_MAX_TILES, TileGrid, analyse_tiles
from vestige.core.errors import InvalidInputError, VestigeError
from vestige.core.plugins import format_exception_line
from vestige.evidence.imageconvert import to_rgb
from vestige.evidence.imagefile import ImageLimits, decode_image
from vestige.evidence.imagemeta import metadata_summary
from vestige.models.artifacts import Registry, attach
from vestige.plugin import Detector, Finding, ImageInput
from vestige.plugin.domain import NO_DOMAIN, admit_jpeg, admit_size, outside
from vestige.plugin.training import TrainableDetector

log = logging.getLogger(__name__)
T = TypeVar("T")


#: Below this many pixels an image (on average over a chunk) decodes faster on one thread: measured on the
#: 2-core machine, 4 threads took decoding of 32×32 PNGs from 13,600 to 7,300 images/s and of 64×64 JPEGs
#: from 8,000–8,700 to 6,400–8,000, while 2 threads gave 1.1–1.55× at 128×128, 1.6–1.7× at 256×256 and
#: 1024×1024 (docs/benchmarks.md).
PARALLEL_DECODE_MIN_PIXELS = 128 * 128


def decode_threads_for(mean_pixels: float, configured: int) -> int:
    """The threads to decode a chunk with: ``configured`` (``jobs.decode_threads``) for images of at least
    :data:`PARALLEL_DECODE_MIN_PIXELS` on average, one for smaller ones."""
    return max(1, configured) if mean_pixels >= PARALLEL_DECODE_MIN_PIXELS else 1


def decode_in_threads(decode: Callable[[T], ImageInput], items: Sequence[T],
                      threads: int) -> list[tuple[ImageInput | None, str | None]]:
    """``decode`` applied to every item, in order, on up to ``threads`` threads (Pillow releases the GIL while it
    decodes); an item whose decoding raises a :class:`VestigeError` gets ``(None, its sentence)``.

    The inputs are the same as one thread's: decoding changes no shared state
    (:mod:`vestige.evidence.imagefile` touches no global Pillow setting).
    """
    def one(item: T) -> tuple[ImageInput | None, str | None]:
        try:
            return decode(item), None
        except VestigeError as exc:
            return None, str(exc)

    if threads <= 1 or len(items) <= 1:
        return [one(item) for item in items]
    threads = min(threads, len(items))
    # Contiguous slices, one per thread: a task per image costs more than decoding a 32×32 picture.
    bounds = [len(items) * k // threads for k in range(threads + 1)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vestige-decode") as pool:
        parts = pool.map(lambda k: [one(item) for item in items[bounds[k]:bounds[k + 1]]], range(threads))
        return [pair for part in parts for pair in part]


def make_input(
    data: bytes, *, name: str, limits: ImageLimits = ImageLimits(), metadata: Mapping[str, Any] | None = None
) -> ImageInput:
    """Validate and decode ``data`` (once) into what a detector receives.

    ``metadata`` is the summary ingest already stored; without it the summary
    is read from the file.
    """
    image, fmt = decode_image(data, name=name, limits=limits)
    if metadata is None:
        metadata = metadata_summary(image, fmt)
    return ImageInput(
        name=name, sha256=hashlib.sha256(data).hexdigest(), data=data, image=to_rgb(image), format=fmt, metadata=metadata
    )


def _deterministic() -> None:
    # Same input and model, same verdict: pin torch's CPU algorithms and seed
    # if a detector has brought torch in. GPU bf16 is not bit-exact; findings
    # record device and precision for that reason.
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)
        torch.use_deterministic_algorithms(True, warn_only=True)


def domain_plan(detector: Detector, inputs: Sequence[ImageInput]) -> dict[int, str | TileGrid]:
    """The inputs ``detector`` does not judge whole (index -> the reason it refuses them, or the tile grid it
    judges them on), by the geometry and JPEG gates of :mod:`vestige.plugin.domain`; empty for a detector without an
    artifact.

    Only attribution detectors (classifiers) are gated here: a verification
    detector tests one hypothesis against its own calibration and decides
    for itself which images it can test (the inversion verifier: its
    generators' output sizes). An image whose size is outside the domain but
    that holds at least one tile of the detector's :attr:`~Detector.tile_side`
    (and whose file passes the JPEG gate) is judged tile by tile
    (:mod:`vestige.analysis.tiles`)."""
    artifact = detector.artifact if isinstance(detector, TrainableDetector) and detector.kind == "attribution" else None
    if artifact is None:
        return {}
    domain = artifact.domain
    side = detector.tile_side
    plan: dict[int, str | TileGrid] = {}
    for i, item in enumerate(inputs):
        width, height = item.image.size
        if domain is None:
            plan[i] = NO_DOMAIN
            continue
        size_reason = admit_size(domain, width=width, height=height)
        jpeg_reason = admit_jpeg(domain, data=item.data, fmt=item.format)
        tiled = size_reason is not None and side is not None and width >= side and height >= side
        if jpeg_reason is not None and (size_reason is None or tiled):
            plan[i] = jpeg_reason  # the file's history, which every tile shares
        elif tiled:
            plan[i] = TileGrid.cover(width, height, side)
        elif size_reason is not None:
            plan[i] = size_reason
    return plan


def run_detector(detector: Detector, inputs: Sequence[ImageInput], *, max_tiles: int = DEFAULT_MAX_TILES) -> list[Finding]:
    """One finding per input, in order; exceptions become error findings.

    A trained detector sees only the inputs inside its artifact's validated
    domain, whole or tile by tile (at most ``max_tiles`` tiles per image);
    the others get an inconclusive finding saying why, written here so that
    no detector can skip the check.
    """
    plan = domain_plan(detector, inputs)
    if not plan:
        return _run_batches(detector, inputs)
    whole = iter(_run_batches(detector, [item for i, item in enumerate(inputs) if i not in plan]))
    findings = []
    for i, item in enumerate(inputs):
        step = plan.get(i)
        if step is None:
            findings.append(next(whole))
        elif isinstance(step, str):
            findings.append(_outside(detector, step))
        else:
            assert isinstance(detector, TrainableDetector)  # only their artifacts plan tiles
            artifact = detector.require_artifact()
            findings.append(analyse_tiles(detector, item, step, max_tiles=max_tiles, run=_run_batches,
                                          calibration=(artifact.domain or {}).get("tiles")))
    return findings


def _run_batches(detector: Detector, inputs: Sequence[ImageInput]) -> list[Finding]:
    findings: list[Finding] = []
    for start in range(0, len(inputs), max(1, detector.batch_size)):
        batch = list(inputs[start : start + detector.batch_size])
        _deterministic()
        began = time.perf_counter()
        try:
            result = detector.analyze(batch)
            if len(result) != len(batch):
                raise RuntimeError(f"returned {len(result)} findings for {len(batch)} images")
        except Exception as exc:  # isolate the plugin: record, go on
            log.warning("detector %s raised on a batch of %d; its findings record the error", detector.name,
                        len(batch), exc_info=True)
            message = format_exception_line(exc)
            result = [
                Finding(detector=detector.name, detector_version=detector.version, label="unknown",
                        model_sha256=_safe_sha(detector), error=message)
                for _ in batch
            ]
        elapsed_ms = (time.perf_counter() - began) * 1000 / len(batch)
        for finding in result:
            if finding.runtime_ms is None:
                finding.runtime_ms = elapsed_ms
        findings.extend(result)
    return findings


def _outside(detector: Detector, reason: str) -> Finding:
    return Finding(detector=detector.name, detector_version=detector.version, label="unknown",
                   model_sha256=_safe_sha(detector), evidence={"domain": outside(reason)}, runtime_ms=0.0)


def _safe_sha(detector: Detector) -> str | None:
    try:
        return detector.model_sha256
    except Exception:  # the finding says the detector failed; its weights cannot be named either
        log.debug("detector %s cannot name its weights", detector.name, exc_info=True)
        return None


@dataclass
class FileResult:
    file: str
    findings: list[Finding]
    error: str | None = None

    def rows(self) -> Iterable[dict]:
        """JSON rows: one per (file, detector), or one error row for a file that could not be read."""
        if self.error:
            yield {"file": self.file, "error": self.error}
            return
        for finding in self.findings:
            # The only field that differs between re-runs: the detector's wall-clock time per image.
            runtime = None if finding.runtime_ms is None else round(finding.runtime_ms, 3)
            yield {"file": self.file, **finding.to_dict(), "runtime_ms": runtime}


def device_for(detector: Detector) -> str:
    """``cuda`` for a detector that prefers a GPU (``device = "gpu"``) when this process has one, else ``cpu``."""
    if detector.device != "gpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def detect_files(paths: Sequence[Path], detectors: Sequence[Detector], limits: ImageLimits, *,
                 registry: Registry | None = None, models: Mapping[str, str] | None = None,
                 max_tiles: int = DEFAULT_MAX_TILES) -> list[FileResult]:
    """Run ``detectors`` on files (at most ``max_tiles`` tiles per image and detector); nothing is stored.

    Trainable detectors run with the artifact ``models`` names for them, else
    the registry's default, else the one their plugin ships (``registry`` is
    ``None`` when there is no workspace).
    """
    models = dict(models or {})
    for detector in detectors:
        attach(detector, registry, models.pop(detector.name, None))
    if models:
        raise InvalidInputError(f"--model names {', '.join(sorted(models))}, which is not among the detectors run")
    results: list[FileResult] = []
    inputs: list[ImageInput] = []
    positions: list[int] = []
    for path in paths:
        try:
            if not path.is_file():
                raise InvalidInputError(f"{path} does not exist or is not a regular file")
            if path.stat().st_size > limits.max_bytes:
                raise InvalidInputError(f"{path} is larger than the limit of {limits.max_bytes} bytes (ingest.max_file_bytes)")
            data = path.read_bytes()
            inputs.append(make_input(data, name=str(path), limits=limits))
            positions.append(len(results))
            results.append(FileResult(str(path), []))
        except OSError as exc:
            results.append(FileResult(str(path), [], error=f"{path} cannot be read: {exc.strerror}"))
        except VestigeError as exc:
            results.append(FileResult(str(path), [], error=str(exc)))
    for detector in detectors:
        if inputs:
            detector.load(device_for(detector))
        for position, finding in zip(positions, run_detector(detector, inputs, max_tiles=max_tiles)):
            results[position].findings.append(finding)
    return results
