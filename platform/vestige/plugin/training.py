"""What a trainable detector implements, and what it is given to learn from.

A trainable detector is a :class:`~vestige.plugin.Detector` that also
subclasses :class:`TrainableDetector`: :meth:`TrainableDetector.fit` learns
from a :class:`TrainingSet` and returns a :class:`TrainedModel` (the artifact
file's bytes and what is known about it); :meth:`TrainableDetector.use_artifact`
makes a detector run with a given artifact. The platform stores artifacts in
the model registry (:mod:`vestige.models.artifacts`), hashes them, and hands the
right one to the detector before :meth:`~vestige.plugin.Detector.load`:
the one a command names, else the lab's default, else the one shipped inside
the plugin (:meth:`TrainableDetector.shipped_artifact`).

Artifact files are safetensors files (tensors only, never pickles) whose
header metadata has one key, ``vestige``, holding canonical JSON: the
detector's name and version and the detector's own ``info``. One key, because
safetensors does not keep the order of several, and the same model must hash
the same (see :func:`pack_artifact`).

Labels: a training example's ``source`` is ``real`` for a camera image, else
the generator's name exactly as ``vestige zoo list`` names it.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vestige.core.errors import InvalidInputError, VestigeError
from vestige.plugin import Detector, ImageInput, ShippedManifest

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

    from vestige.plugin.domain import DomainScores

__all__ = [
    "REAL",
    "ArtifactFile",
    "Example",
    "TrainableDetector",
    "TrainedModel",
    "TrainingSet",
    "TrainOption",
    "pack_artifact",
    "unpack_artifact",
]

#: The source name of camera images.
REAL = "real"
#: Why training stopped (``metrics["stopped_by"]``); only the last means the model may not have converged.
STOPPED_BY = ("early stopping", "epochs", "time budget")
#: Torch CPU threads a training uses unless told otherwise: one never oversubscribes a shared machine, and a
#: model trained with one thread replays byte for byte on any machine (``--threads`` sets more).
DEFAULT_THREADS = 1
ARTIFACT_METADATA_KEY = "vestige"


class EpochClock:
    """Times a training's epochs: a progress line with the time per epoch and the ETA, the budget check, and
    why training stopped (``metrics["stopped_by"]``, ``metrics["under_trained"]``).

    ``minutes`` is a wall-clock budget: :meth:`over_budget` is true when one more epoch, at the mean epoch
    time so far, would end past it.
    """

    def __init__(self, epochs: int, minutes: float | None = None) -> None:
        import time

        self._now = time.monotonic
        self.epochs = max(1, int(epochs))
        self.minutes = minutes or None
        self.began = self._now()
        self.done = 0
        self.stopped_by = "epochs"

    def lap(self) -> str:
        """Count one epoch; ``"epoch 3/30, 12.4 s/epoch, ETA 5.6 min"``."""
        self.done += 1
        per = (self._now() - self.began) / self.done
        left = per * (self.epochs - self.done)
        if self.minutes:
            left = min(left, max(0.0, self.minutes * 60 - (self._now() - self.began)))
        return f"epoch {self.done}/{self.epochs}, {per:.1f} s/epoch, ETA {left / 60:.1f} min"

    def over_budget(self) -> bool:
        if not self.minutes or self.done == 0:
            return False
        elapsed = self._now() - self.began
        if elapsed * (self.done + 1) / self.done > self.minutes * 60:
            self.stopped_by = "time budget"
            return True
        return False

    def early_stop(self) -> None:
        self.stopped_by = "early stopping"

    def metrics(self) -> dict[str, Any]:
        """How training ended (no timings: artifacts of the same training must be the same bytes)."""
        return {"stopped_by": self.stopped_by, "under_trained": self.stopped_by == "time budget"}

    def warning(self) -> str | None:
        """One line when the budget, not convergence, ended training."""
        if self.stopped_by != "time budget":
            return None
        return (f"the time budget of {self.minutes:g} min stopped training after {self.done} of {self.epochs} epochs, "
                "before early stopping: the model may be under-trained")


def use_threads(threads: int | None) -> int | None:
    """Set torch's CPU threads (when torch is installed); returns what was set."""
    if threads is None:
        return None
    if threads < 1:
        raise InvalidInputError(f"--threads must be at least 1, not {threads}")
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(int(threads))
    return int(threads)


class NoModelError(VestigeError):
    """A trainable detector was asked to analyse without a trained model."""

    status = 409


@dataclass(frozen=True)
class Example:
    """One labelled image: ``source`` is ``real`` or a generator name; ``klass`` its semantic class if known."""

    image: ImageInput
    source: str
    klass: str | None = None


@dataclass
class TrainingSet:
    """What a detector learns from: training and validation examples, and how to perturb.

    ``sources`` lists every label in a stable order (``real`` first when
    present). ``augment``, when given, applies one random *seen* perturbation
    (the corruption set RepMix trains with) to a picture, drawing from the
    ``numpy`` generator it is handed; detectors that immunise or augment use
    it, and must not use perturbations kept for testing. ``dataset_sha256``
    is the SHA-256 of the dataset manifest, recorded with the artifact.
    """

    train: Sequence[Example]
    validation: Sequence[Example]
    sources: tuple[str, ...]
    dataset_sha256: str | None = None
    name: str = "dataset"
    augment: Callable[[PILImage.Image, np.random.Generator], PILImage.Image] | None = None
    #: The JPEG qualities each source's images went through before they became pixels
    #: (``{"real": (75, 75)}`` for zoo32's CIFAR photographs); ``None`` when unknown.
    jpeg_history: Mapping[str, tuple[int, int]] | None = None

    def __post_init__(self) -> None:
        if not self.train:
            raise InvalidInputError(f"{self.name} has no training images")
        unknown = sorted({e.source for e in (*self.train, *self.validation)} - set(self.sources))
        if unknown:
            raise InvalidInputError(f"{self.name} has examples of sources not in its source list: {', '.join(unknown)}")


@dataclass(frozen=True)
class TrainedModel:
    """The result of :meth:`TrainableDetector.fit`.

    ``data`` is the artifact file (build it with :func:`pack_artifact`);
    ``metrics`` are measured on the validation split; ``calibration`` holds
    what the detector fitted for calibrated outputs (temperature, thresholds).
    """

    data: bytes
    metrics: Mapping[str, Any] = field(default_factory=dict)
    calibration: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ArtifactFile:
    """An artifact as handed to a detector: its verified bytes and what its header says."""

    sha256: str
    data: bytes
    detector: str
    version: str
    info: Mapping[str, Any]
    origin: str = "trained"

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "trained", name: str = "artifact") -> ArtifactFile:
        header = unpack_artifact(data, name=name)
        return cls(sha256=hashlib.sha256(data).hexdigest(), data=data, detector=header["detector"],
                   version=header["version"], info=header.get("info", {}), origin=origin)

    def tensors(self) -> dict[str, np.ndarray]:
        """The model's tensors as numpy arrays (fp16 stays fp16), without the validated domain's."""
        from safetensors.numpy import load

        return {k: v for k, v in load(self.data).items() if not k.startswith("domain.")}

    @property
    def domain(self) -> Mapping[str, Any] | None:
        """The validated domain recorded in the artifact (:mod:`vestige.plugin.domain`), ``None`` if it has none."""
        value = self.info.get("domain")
        return value if isinstance(value, Mapping) else None

    @property
    def open_set_threshold(self) -> float:
        """The calibrated probability a class must reach to be named (``0.0`` for a detector without one)."""
        info = self.info
        return float(info.get("threshold", (info.get("calibration") or {}).get("unknown_threshold", 0.0)))

    def novelty(self) -> Any:
        """The domain's novelty model (:class:`vestige.plugin.domain.Novelty`), ``None`` when the domain has none."""
        from safetensors.numpy import load

        from vestige.plugin.domain import MEANS_TENSOR, Novelty

        if self.domain is None or not self.domain.get("novelty"):
            return None
        tensors = load(self.data)
        return Novelty.from_tensors(tensors) if MEANS_TENSOR in tensors else None


@dataclass(frozen=True)
class TrainOption:
    """An option of ``vestige train DETECTOR``: ``--name VALUE``, or ``--name`` for a flag (``type`` bool)."""

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None


class TrainableDetector(Detector):
    """A detector that learns from labelled images and runs with an artifact from the registry.

    Subclasses implement :meth:`fit` and :meth:`use_artifact`, and override
    :meth:`shipped_artifact` when the plugin ships a default. ``model_sha256``
    and ``labels`` come from the artifact in use.
    """

    #: Options ``vestige train NAME`` offers besides ``--dataset`` and ``--seed``.
    train_options: ClassVar[tuple[TrainOption, ...]] = ()
    #: How a lab gets a model for this detector, when it is not ``vestige train NAME --dataset DIR``.
    model_hint: ClassVar[str | None] = None

    #: What :meth:`domain_scores` uses as novelty features, for the domain record.
    domain_features: ClassVar[str | None] = None

    _artifact: ArtifactFile | None = None

    @abstractmethod
    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        """Learn from ``data.train`` (``data.validation`` for early stopping and calibration)."""

    @abstractmethod
    def use_artifact(self, artifact: ArtifactFile) -> None:
        """Run with ``artifact`` from now on (called before :meth:`load`; may be called again).

        Implementations keep it in ``self._artifact`` (which ``model_sha256``
        reports) and drop whatever an earlier artifact loaded.
        """

    def shipped_artifact(self) -> ArtifactFile | None:
        """The default artifact inside the plugin package, verified, or ``None`` when it ships none
        (usually :func:`read_shipped` of the plugin's ``weights/`` folder)."""
        return None

    def domain_scores(self, images: Sequence[ImageInput]) -> DomainScores:
        """Calibrated probabilities, novelty features and P(synthetic) of in-domain ``images``.

        Implement it to give artifacts a novelty model (:mod:`vestige.plugin.domain`);
        without it an artifact's domain has the geometry and JPEG gates only.
        """
        raise NotImplementedError(f"{self.name} computes no novelty features")

    def excluded_from_domain_fit(self, image: ImageInput) -> bool:
        """Whether a training image should stay out of the novelty fit (e.g. it is part of the model itself)."""
        return False

    def augmentation_domain(self) -> Mapping[str, Any]:
        """What the artifact in use was trained to withstand, for its domain record.

        ``perturbations`` (names), ``jpeg_qualities`` (lowest and highest JPEG
        quality of its augmentation) and ``scale_range`` (the input scales it
        was validated at; default exactly the training size).
        """
        return {}

    @property
    def artifact(self) -> ArtifactFile | None:
        return self._artifact

    @property
    def tile_side(self) -> int | None:
        """An attribution detector tiles at its artifact's validated input side, when it was validated on square
        images of that side; a verification detector (a test of one hypothesis) never does."""
        domain = None if self._artifact is None else self._artifact.domain
        if self.kind != "attribution" or domain is None:
            return None
        side = domain.get("input_side")
        return int(side) if side and [side, side] in [list(s) for s in domain.get("sizes", [])] else None

    @property
    def model_sha256(self) -> str | None:
        return None if self._artifact is None else self._artifact.sha256

    def require_artifact(self) -> ArtifactFile:
        """The artifact in use; a clear error when there is none."""
        if self._artifact is None:
            raise NoModelError(no_model_message(self))
        return self._artifact


def no_model_message(detector: TrainableDetector) -> str:
    """One line: the detector has no model, and how to get one."""
    how = detector.model_hint or f"train one with `vestige train {detector.name} --dataset DIR`"
    return f"detector {detector.name} has no trained model: {how} or import one with `vestige models import FILE --default`"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def pack_artifact(tensors: Mapping[str, np.ndarray], *, detector: str, version: str,
                  info: Mapping[str, Any] | None = None) -> bytes:
    """A safetensors file of ``tensors`` with the one-key header Vestige reads; same input, same bytes."""
    import numpy as np
    from safetensors.numpy import save

    header = {"detector": detector, "version": version, "info": dict(info or {})}
    arrays = {name: np.ascontiguousarray(tensors[name]) for name in sorted(tensors)}
    return save(arrays, metadata={ARTIFACT_METADATA_KEY: _canonical(header)})


def unpack_artifact(data: bytes, *, name: str = "artifact") -> dict[str, Any]:
    """The Vestige header of an artifact file; a one-line error for anything else."""
    if len(data) < 8:
        raise InvalidInputError(f"{name} is not a Vestige model artifact (too short for a safetensors file)")
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or size > min(len(data) - 8, 100 * 1024 * 1024):
        raise InvalidInputError(f"{name} is not a Vestige model artifact (not a safetensors file)")
    try:
        header = json.loads(data[8 : 8 + size])
        meta = json.loads(header["__metadata__"][ARTIFACT_METADATA_KEY])
        if not isinstance(meta.get("detector"), str) or not isinstance(meta.get("version"), str):
            raise KeyError("detector")
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError(f"{name} is a safetensors file without Vestige's header naming its detector") from None
    return meta


def read_artifact_file(path: Path, *, origin: str = "shipped", expected_sha256: str | None = None) -> ArtifactFile:
    """An artifact file from disk, refused with one line when its hash is not ``expected_sha256``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read model artifact {path}: {exc.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        raise InvalidInputError(f"model artifact {path} has SHA-256 {digest[:12]}…, not the recorded "
                                f"{expected_sha256[:12]}…: it was modified or damaged; reinstall the plugin")
    return ArtifactFile.from_bytes(data, origin=origin, name=str(path))


def read_shipped(folder: Path, name: str | None = None) -> ArtifactFile | None:
    """Entry ``name`` (default: the default entry) of the shipped-weights manifest of ``folder``, its bytes
    checked against the manifest; ``None`` when ``name`` is ``None`` and the folder names no default."""
    manifest = ShippedManifest.read(folder)
    if name is None and manifest.default is None:
        return None
    entry = manifest.entry(name)
    return ArtifactFile.from_bytes(entry.read_bytes(), origin="shipped", name=str(entry.path))
