"""What the baselines share: training on a :class:`TrainingSet`, the artifact, and findings.

A baseline subclass says how it learns (:meth:`BaselineDetector.learn`,
returning numpy arrays and the hyper-parameters it used) and how those
arrays score images (:meth:`BaselineDetector.model`, returning a
:class:`BaselineModel`). This class does the rest the same way for all of them:
it brings images to the working resolution (:mod:`.preparation`), fits the
calibration on the validation split (:func:`vestige.plugin.calibration.fit_scaling`), packs the
artifact, and turns raw scores into findings.

Determinism: every image is scored on its own (never as a row of a batched
matrix product whose blocking depends on the batch), with BLAS held to one
thread, so the same artifact and image give the same finding whatever batch
the image arrives in and however many cores the worker has. Training holds
BLAS to one thread too, so that the same seed and images give the same
artifact bytes on any machine of the same architecture. One thread is also
the fast choice at these sizes: OpenBLAS's threads made the small products
ten times slower on a busy machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vestige.plugin import Finding, ImageInput, Picture, VestigeError
from vestige.plugin.calibration import Scaling, fit_scaling
from vestige.plugin.training import (
    REAL,
    ArtifactFile,
    TrainableDetector,
    TrainedModel,
    TrainingSet,
    TrainOption,
    pack_artifact,
)
from vestige_baselines.preparation import load_split, prepare, working_size

#: Version of the artifact layout (``info["format"]``); a detector refuses other layouts.
ARTIFACT_FORMAT = 1
VERSION = "0.1.0"

SIZE_OPTION = TrainOption("size", int, 0,
                          "Working resolution S (S×S); 0: from the training images (docs/baselines.md).")


class TrainingDataError(VestigeError):
    """A training set or option a baseline cannot learn from."""

    status = 422


class ArtifactMismatchError(VestigeError):
    """An artifact that belongs to another detector, or to another layout."""

    status = 422


@dataclass
class Scored:
    """One image's raw per-source numbers, the evidence behind them, and anything pictures need."""

    raw: np.ndarray
    evidence: dict[str, Any] = field(default_factory=dict)
    extra: Any = None


class BaselineModel(ABC):
    """A trained baseline, rebuilt from its artifact's arrays."""

    @abstractmethod
    def score(self, pixels: np.ndarray) -> Scored:
        """Score one ``(S, S, 3)`` uint8 image."""

    def score_many(self, pixels: np.ndarray) -> list[Scored]:
        """Score ``(B, S, S, 3)`` images; the result for each must not depend on the others."""
        return [self.score(p) for p in pixels]


def resolve_options(declared: Sequence[TrainOption], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every declared option's value: given (converted to its type) or its default; unknown names refused."""
    given = dict(given or {})
    unknown = sorted(set(given) - {o.name for o in declared})
    if unknown:
        raise TrainingDataError(f"unknown option(s) {', '.join(unknown)}; this detector takes "
                                f"{', '.join(o.name for o in declared)}")
    values: dict[str, Any] = {}
    for option in declared:
        value = given.get(option.name)
        value = option.default if value is None else option.type(value)
        if option.choices and value not in option.choices:
            raise TrainingDataError(f"option {option.name} must be one of {', '.join(option.choices)}, not {value!r}")
        values[option.name] = value
    return values


def trained_sources(data: TrainingSet) -> tuple[str, ...]:
    """The sources the detector will name: ``data.sources``, each of which must have training images."""
    present = {e.source for e in data.train}
    missing = [s for s in data.sources if s not in present]
    if missing:
        raise TrainingDataError(f"{data.name} has no training images of {', '.join(missing)}; "
                                "every source needs some")
    if len(data.sources) < 2:
        raise TrainingDataError(f"{data.name} has one source; attribution needs at least two")
    return tuple(data.sources)


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which numpy's and scipy's BLAS use one thread (see the module's docstring)."""
    # scipy ships its own OpenBLAS, loaded with scipy.linalg: a library loaded after the limit
    # is set escapes it (scikit-learn's PCA then ran 40 times slower on a busy machine).
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _quiet(message: str) -> None:
    """Progress nobody asked for."""


class BaselineDetector(TrainableDetector):
    """A classic attribution baseline trained on a lab's own images; see docs/baselines.md."""

    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "attribution"
    device: ClassVar[str] = "cpu"
    batch_size: ClassVar[int] = 64
    #: ``resize`` or ``crop``: how an image reaches the working resolution (:mod:`.preparation`).
    preparation: ClassVar[str] = "resize"
    #: Evidence key of the raw per-source numbers (``None``: the model's evidence shows them its own way),
    #: and what ``scores`` are, said once in each finding.
    raw_name: ClassVar[str | None] = "raw"
    scores_are: ClassVar[str] = ""
    #: ``none``, ``temperature`` or ``temperature+offsets`` (fitted on validation, :func:`vestige.plugin.calibration.fit_scaling`).
    calibration: ClassVar[str] = "temperature"

    def __init__(self) -> None:
        self._artifact: ArtifactFile | None = None
        self._model: BaselineModel | None = None
        self._scaling = Scaling()
        self._sources: tuple[str, ...] = ()

    # -- what each baseline provides ---------------------------------------------------------

    @abstractmethod
    def learn(self, pixels: np.ndarray, labels: np.ndarray, sources: tuple[str, ...], options: dict[str, Any],
              seed: int, progress: Callable[[str], None]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The artifact's arrays and the hyper-parameters used, from training pixels ``(N, S, S, 3)`` uint8."""

    @abstractmethod
    def model(self, tensors: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> BaselineModel:
        """The scorer those arrays make (the same at validation time and in use)."""

    def validation_metrics(self, model: BaselineModel, scored: list[Scored], labels: np.ndarray,
                           sources: tuple[str, ...]) -> dict[str, Any]:
        """Metrics a baseline adds to the common ones (validation accuracy per source)."""
        return {}

    def pictures(self, scored: Scored, source: str) -> list[Picture]:
        """Pictures for a finding that names ``source``."""
        return []

    # -- training -------------------------------------------------------------------------------

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        say = progress or _quiet
        opts = resolve_options(self.train_options, options)
        sources = trained_sources(data)
        size = working_size([e.image.image for e in data.train], opts.get("size"))
        say(f"{len(data.train)} training and {len(data.validation)} validation images of "
            f"{len(sources)} sources, worked on at {size}×{size} ({self.preparation})")
        pixels, labels = load_split(data.train, sources, size, self.preparation)
        with one_blas_thread():  # the same arrays on any number of cores (see the module's docstring)
            tensors, hyper = self.learn(pixels, labels, sources, opts, seed, say)
        info: dict[str, Any] = {
            "format": ARTIFACT_FORMAT, "sources": list(sources), "input_size": size,
            "preparation": self.preparation, "hyperparameters": hyper, "seed": seed,
            "dataset": data.name, "dataset_sha256": data.dataset_sha256,
            "train_images": {s: int(np.sum(labels == i)) for i, s in enumerate(sources)},
        }
        model = self.model(tensors, info)
        val_pixels, val_labels = load_split(data.validation, sources, size, self.preparation)
        say(f"scoring {len(val_labels)} validation images")
        scored = _score_all(model, val_pixels)
        raw = np.stack([s.raw for s in scored]) if scored else np.zeros((0, len(sources)))
        scaling = self._calibrate(raw, val_labels)
        info["calibration"] = {"method": self.calibration,
                               **(scaling.to_json(sources) if self.calibration != "none" else {})}
        predicted = np.array([np.argmax(scaling.probabilities(r)) for r in raw], dtype=np.int64)
        metrics = _accuracy(predicted, val_labels, sources)
        metrics.update(self.validation_metrics(model, scored, val_labels, sources))
        info["validation"] = {"images": len(val_labels), "accuracy": metrics["accuracy"]}
        say(f"validation accuracy {_pct(metrics['accuracy'])} on {len(val_labels)} images"
            + (f"; temperature {scaling.temperature:.4g}" if self.calibration != "none" else ""))
        data_bytes = pack_artifact(tensors, detector=self.name, version=self.version, info=info)
        return TrainedModel(data=data_bytes, metrics=metrics, calibration=info["calibration"])

    def _calibrate(self, raw: np.ndarray, labels: np.ndarray) -> Scaling:
        if self.calibration == "none":
            return Scaling()
        return fit_scaling(raw, labels, offsets=self.calibration == "temperature+offsets")

    # -- use ------------------------------------------------------------------------------------

    def use_artifact(self, artifact: ArtifactFile) -> None:
        if artifact.detector != self.name:
            raise ArtifactMismatchError(f"artifact {artifact.sha256[:12]} is a model of {artifact.detector}, "
                                        f"not of {self.name}")
        if artifact.info.get("format") != ARTIFACT_FORMAT:
            raise ArtifactMismatchError(f"artifact {artifact.sha256[:12]} has layout {artifact.info.get('format')!r}; "
                                        f"{self.name} {self.version} reads layout {ARTIFACT_FORMAT}: retrain it")
        sources = tuple(artifact.info["sources"])
        self._model = self.model(artifact.tensors(), artifact.info)
        self._scaling = Scaling.from_json(dict(artifact.info.get("calibration", {})), sources)
        self._sources = sources
        self._artifact = artifact

    @property
    def labels(self) -> tuple[str, ...]:
        return self._sources if self._artifact is not None else super().labels

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        artifact = self.require_artifact()
        assert self._model is not None
        size = int(artifact.info["input_size"])
        prepared = [prepare(item.image, size, self.preparation) for item in batch]
        if not prepared:
            return []
        with one_blas_thread():
            scored = self._model.score_many(np.stack([pixels for pixels, _ in prepared]))
            return [self._conclude(one, note) for one, (_, note) in zip(scored, prepared, strict=True)]

    def _conclude(self, scored: Scored, note: dict[str, Any]) -> Finding:
        probabilities = self._scaling.probabilities(scored.raw)
        best = int(np.argmax(probabilities))
        source = self._sources[best]
        evidence: dict[str, Any] = {"scores_are": self.scores_are}
        if self.raw_name is not None:
            evidence[self.raw_name] = {s: float(v) for s, v in zip(self._sources, scored.raw, strict=True)}
        evidence.update(scored.evidence)
        evidence["input"] = note
        if self.calibration != "none":
            evidence["temperature"] = self._scaling.temperature
        return self.finding(
            label="real" if source == REAL else "synthetic",
            source=None if source == REAL else source,
            scores={s: float(p) for s, p in zip(self._sources, probabilities, strict=True)},
            confidence=min(1.0, float(probabilities[best])),
            evidence=evidence,
            pictures=self.pictures(scored, source),
        )


def _score_all(model: BaselineModel, pixels: np.ndarray, chunk: int = 256) -> list[Scored]:
    """Scores of many images, a chunk at a time to bound memory."""
    with one_blas_thread():
        return [one for start in range(0, len(pixels), chunk)
                for one in model.score_many(pixels[start : start + chunk])]


def _accuracy(predicted: np.ndarray, labels: np.ndarray, sources: tuple[str, ...]) -> dict[str, Any]:
    """Validation accuracy, overall and per source (``None`` where a source has no validation images)."""
    per_source = {}
    for i, source in enumerate(sources):
        mask = labels == i
        per_source[source] = float(np.mean(predicted[mask] == i)) if mask.any() else None
    return {"accuracy": float(np.mean(predicted == labels)) if len(labels) else None,
            "validation_images": int(len(labels)), "accuracy_per_source": per_source}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"
