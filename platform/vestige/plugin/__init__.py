"""The public plugin API: what a detector plugin imports from Vestige.

A plugin module implements hooks (see :mod:`vestige.plugin.hookspecs`) marked with
:data:`hookimpl`, and is registered under the ``vestige`` entry-point group::

    [project.entry-points.vestige]
    mydetector = "my_package"

The contract every detector honours is :class:`Detector` and the
:class:`Finding` it returns.

This package is the only door into Vestige for a plugin (docs/plugins.md,
"What a plugin may import"; an import contract in ``.importlinter`` enforces
it for the built-in plugins): this module, with the errors a plugin raises,
and its submodules :mod:`~vestige.plugin.training` (trainable detectors and
model artifacts), :mod:`~vestige.plugin.calibration`,
:mod:`~vestige.plugin.domain` (the domain of competence and its decision),
:mod:`~vestige.plugin.weightfiles` (shipped weights), :mod:`~vestige.plugin.augment`
(training augmentations from registered perturbations), :mod:`~vestige.plugin.cifar`,
:mod:`~vestige.plugin.metrics`,
:mod:`~vestige.plugin.services` (running detectors and perturbations, the
plugin manager) and :mod:`~vestige.plugin.commands` (helpers for commands a
plugin adds to the command line).
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from vestige.core.errors import InvalidInputError, NotFoundError, PluginError, VestigeError
from vestige.plugin.hookspecs import hookimpl
from vestige.plugin.weightfiles import SHIPPED_FORMAT, ShippedEntry, ShippedManifest, WeightsMismatchError, file_sha256, load_verified

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

    from vestige.core.config import Config

__all__ = [
    "DETECTOR_KINDS",
    "ENCODED_IMAGE_KEY",
    "LABELS",
    "NetworkSpec",
    "Detector",
    "Finding",
    "GeneratorSpec",
    "ImageInput",
    "InputSpec",
    "InvalidInputError",
    "NotFoundError",
    "Perturbation",
    "Picture",
    "PluginError",
    "ReportSection",
    "SHIPPED_FORMAT",
    "ShippedEntry",
    "ShippedManifest",
    "VestigeError",
    "WeightsMismatchError",
    "file_sha256",
    "hookimpl",
    "load_configuration",
    "load_verified",
    "reference_photographs",
    "outcome_of",
    "reason_of",
]

LABELS = ("real", "synthetic", "unknown")
DETECTOR_KINDS = ("attribution", "verification", "provenance")
#: Key of ``PIL.Image.info`` where a :class:`Perturbation` whose output is a
#: file (a JPEG re-encoding) leaves the encoded bytes, so that a derived image
#: keeps that container instead of being stored as PNG.
ENCODED_IMAGE_KEY = "vestige.encoded"
#: Decimal places of floats in canonical JSON, so re-runs on the same kind of
#: device give byte-identical output.
FLOAT_DIGITS = 6


def outcome_of(label: str, source: str | None) -> str:
    """The four outcomes of a finding: ``real``, ``synthetic`` (a source named), ``synthetic-unknown-source``
    (synthetic by the detector's evidence, matching no known generator) and ``inconclusive``."""
    if label == "real":
        return "real"
    if label == "synthetic":
        return "synthetic" if source else "synthetic-unknown-source"
    return "inconclusive"


def reason_of(evidence: Mapping[str, Any] | None) -> str | None:
    """The one sentence a finding's evidence gives for not being a plain attribution, if any."""
    if not isinstance(evidence, Mapping):
        return None
    domain = evidence.get("domain")
    if isinstance(domain, Mapping) and domain.get("reason"):
        return str(domain["reason"])
    reason = evidence.get("reason")
    return str(reason) if reason else None


def _round(value: Any, digits: int = FLOAT_DIGITS) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, digits)
    if isinstance(value, Mapping):
        return {str(k): _round(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v, digits) for v in value]
    return value


@dataclass(frozen=True)
class ImageInput:
    """One image handed to a detector: the original bytes and the decoded RGB picture.

    When the platform cuts a larger image into tiles (:attr:`Detector.tile_side`,
    docs/tiles.md), each tile arrives as its own input: ``image`` is the tile
    at native resolution, ``tile`` its ``(x, y, side)`` in the whole image,
    and ``data``, ``sha256``, ``format`` and ``metadata`` are the whole file's.
    """

    name: str
    sha256: str
    data: bytes
    image: PILImage.Image
    format: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tile: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Picture:
    """A picture a finding shows a reviewer (fingerprint, residual, spectrum, ...)."""

    name: str
    caption: str
    data: bytes
    media_type: str = "image/png"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "caption": self.caption, "media_type": self.media_type, "sha256": self.sha256, "size": len(self.data)}

    @classmethod
    def from_pixels(cls, name: str, caption: str, pixels: np.ndarray, *, zoom: int = 1,
                    png_compress_level: int = 6) -> Picture:
        """A deferred picture: uint8 pixels (H×W or H×W×3) kept as they are and rendered as PNG (enlarged
        ``zoom`` times, nearest neighbour) only when a page or report shows it (:mod:`vestige.plugin.pixels`).

        Much cheaper than encoding a PNG per finding; the stored bytes are
        hashed with the finding like any picture, and their rendering is
        deterministic.
        """
        from vestige.plugin.pixels import PIXELS_MEDIA_TYPE, pack_pixels

        return cls(name, caption, pack_pixels(pixels, zoom=zoom, png_compress_level=png_compress_level), PIXELS_MEDIA_TYPE)


@dataclass
class Finding:
    """One detector's conclusion about one image.

    ``label`` is ``real``, ``synthetic`` or ``unknown``; ``source`` names the
    attributed generator (or is ``None``); ``scores`` are per-class
    probabilities or scores; ``evidence`` holds the numbers behind the
    conclusion (losses, p-values, matching bits...). ``model_sha256`` names the
    weights that produced it, ``None`` for a detector without weights.
    """

    detector: str
    detector_version: str
    label: str
    model_sha256: str | None = None
    source: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    pictures: list[Picture] = field(default_factory=list)
    device: str = "cpu"
    precision: str = "fp32"
    runtime_ms: float | None = None
    error: str | None = None
    #: A vector kept with the verdict so similar images can be found later.
    embedding: list[float] | None = None

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"finding label must be one of {', '.join(LABELS)}, not {self.label!r}")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"finding confidence must lie in [0, 1], not {self.confidence!r}")

    @property
    def outcome(self) -> str:
        """``real``, ``synthetic``, ``synthetic-unknown-source`` or ``inconclusive`` (label ``unknown`` or an error)."""
        return "inconclusive" if self.error else outcome_of(self.label, self.source)

    @property
    def reason(self) -> str | None:
        """Why the finding is not a plain attribution (outside the validated domain, below a threshold), if it says."""
        return reason_of(self.evidence)

    def to_dict(self, *, digits: int = FLOAT_DIGITS, include_embedding: bool = False) -> dict[str, Any]:
        """The canonical JSON form, floats rounded to ``digits`` places."""
        out = {
            "detector": self.detector,
            "detector_version": self.detector_version,
            "model_sha256": self.model_sha256,
            "label": self.label,
            "source": self.source,
            "scores": _round(self.scores, digits),
            "confidence": _round(self.confidence, digits),
            "evidence": _round(self.evidence, digits),
            "pictures": [p.to_dict() for p in self.pictures],
            "device": self.device,
            "precision": self.precision,
            "error": self.error,
            "outcome": self.outcome,
            "reason": self.reason,
        }
        if include_embedding:
            out["embedding"] = _round(self.embedding, digits)
        return out


class Detector(ABC):
    """A detector plugin's detector.

    Subclasses set the class attributes and implement :meth:`analyze`.
    Trainable detectors also implement ``fit`` and report the weights they use
    through :attr:`model_sha256`.
    """

    #: Unique name, used on the command line and in verdicts.
    name: ClassVar[str]
    version: ClassVar[str]
    #: One of :data:`DETECTOR_KINDS`.
    kind: ClassVar[str]
    #: One-line description for ``vestige plugins``.
    description: ClassVar[str] = ""
    #: ``cpu``: runs on the CPU. ``gpu``: prefers a GPU and runs on the CPU too: analyses send it to the ``gpu``
    #: queue while a live worker consumes it (else to ``cpu``), and a process loads it with ``load("cuda")``
    #: when torch sees a GPU, ``load("cpu")`` otherwise (``vestige.analysis.detect.device_for``).
    device: ClassVar[str] = "cpu"
    batch_size: ClassVar[int] = 32
    #: ``False`` for a detector too costly to run unless it is named (``--detector``),
    #: e.g. the inversion verifier: "all detectors" leaves it out.
    runs_by_default: ClassVar[bool] = True
    #: Rough seconds per image on a CPU, for the cost shown before the detector has run in a
    #: workspace (afterwards its measured run times are used); ``None``: not declared.
    seconds_per_image: ClassVar[float | None] = None

    @property
    def labels(self) -> tuple[str, ...]:
        """The classes it can name: ``real`` and generator names, from its training data."""
        return LABELS

    @property
    def model_sha256(self) -> str | None:
        """SHA-256 of the model weights in use, ``None`` for a detector without weights."""
        return None

    @property
    def tile_side(self) -> int | None:
        """The side of the square input the detector judges, when the platform may cut a larger image into tiles
        of that side at native resolution and aggregate them into one finding (docs/tiles.md); ``None`` (the
        default): the detector always sees the whole image. Trained attribution detectors take it from their
        artifact's validated domain."""
        return None

    def load(self, device: str = "cpu") -> None:  # noqa: B027 - optional hook
        """Load weights onto ``device``; called once per process before the first batch."""

    @abstractmethod
    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        """Return one finding per image of ``batch``, in order."""

    def finding(self, **fields: Any) -> Finding:
        """A :class:`Finding` with this detector's name, version and weights filled in."""
        fields.setdefault("model_sha256", self.model_sha256)
        return Finding(detector=self.name, detector_version=self.version, **fields)


@dataclass(frozen=True)
class InputSpec:
    """What a generator takes: a latent of ``latent_shape`` drawn from ``distribution``,
    and a class index below ``num_classes`` when it is class-conditional."""

    latent_shape: tuple[int, ...]
    distribution: str = "normal"
    num_classes: int | None = None


@dataclass(frozen=True)
class GeneratorSpec:
    """A generative model the lab holds, as an inversion verifier needs it."""

    name: str
    version: str
    build: Callable[[], Any]
    input_spec: InputSpec
    encoder: Callable[[], Any] | None = None
    weights_sha256: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkSpec:
    """A trained network a plugin lends to others by name (a classifier whose features another detector uses).

    ``build()`` returns the torch module in eval mode, its weights checked
    against ``weights_sha256`` as it loads (``load_verified``).
    """

    name: str
    version: str
    build: Callable[[], Any]
    weights_sha256: str
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Perturbation(ABC):
    """An image operation whose name and parameters perturbation history records."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Parameter name -> default value (its type is the parameter's type).
    parameters: ClassVar[Mapping[str, Any]] = {}
    #: For an operation with a ``severity`` parameter (1..5): what each severity sets, in order (the JPEG
    #: quality of ``corrupt-jpeg-compression``, for instance), so a model can state the range it trained on.
    severity_levels: Sequence[Any] = ()

    @abstractmethod
    def apply(self, image: PILImage.Image, *, rng: np.random.Generator, **params: Any) -> PILImage.Image:
        """Return the perturbed image; the same ``rng`` state gives the same result."""


@dataclass(frozen=True)
class ReportSection:
    """Extra content a plugin adds to a case report."""

    title: str
    html: str
    data: Mapping[str, Any] = field(default_factory=dict)


def reference_photographs() -> dict[str, PILImage.Image]:
    """The photographs scikit-image bundles (name -> RGB picture), real images for a plugin's negatives;
    empty when scikit-image is not installed (it comes with the ``dev`` extra)."""
    try:
        from vestige.models.photographs import package_photographs

        return package_photographs()
    except ImportError:
        return {}


def load_configuration() -> Config:
    """The configuration in effect (``VESTIGE_CONFIG``, ``config.toml``, environment), read afresh.

    For a plugin whose behaviour the lab configures: read it in
    ``Detector.load``, not at import time.
    """
    from vestige.core.config import load_config

    return load_config()
