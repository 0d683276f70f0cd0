"""Where a model's competence ends: the validated domain of an artifact, and abstention outside it.

A model is competent only on the kind of image it was trained and validated
on. Every trained attribution artifact therefore carries a *validated domain*
(``info["domain"]`` in its header, plus two tensors), and a finding names a
source, or says ``real``, only for an image inside it. Outside it the finding
is *inconclusive* (label ``unknown``) with one sentence saying why.

The domain has three gates, applied in this order (docs/verdicts.md):

1. **Input geometry** (:func:`admit`, in the core, before the detector runs):
   the image's size must be one the model was validated on (``sizes``, scaled
   by at most ``scale_range``). A 640×427 photograph given to a model
   validated on 32×32 images is not judged: cropping or resizing it would
   show the model something it never learned.
2. **JPEG history** (:func:`admit`): a JPEG file whose estimated IJG quality
   lies outside the qualities seen in training (the data's own history and
   the recipe's JPEG augmentation) is not judged.
3. **Novelty** (:func:`decide`, on the detector's features): a
   class-conditional Gaussian with one shared covariance (Lee et al. 2018,
   "Mahalanobis" out-of-distribution score) fitted on the training images'
   features. The score is the Mahalanobis distance to the mean of the class
   the classifier names (its top candidate), divided by √D so that it reads
   on the same scale whatever the feature size. Each class has its own
   threshold, keeping a share ``keep`` of that class's validation images: a
   per-class envelope rejects far more samples of unseen generators than one
   threshold on the distance to the nearest class (measured in
   docs/verdicts.md). The rates at which it rejects *held-out generators*
   (each generator left out of the fit in turn, the classifier restricted to
   the others) are measured at the same time and recorded.

Inside the domain, :func:`decide` gives one of four outcomes:

- ``real``: the calibrated probability of ``real`` is the largest and at least
  the open-set threshold;
- ``synthetic`` with a source: a generator's calibrated probability is the
  largest and at least the threshold, *and* the probability of synthetic
  meets the accusation threshold;
- ``synthetic``, source unknown: no class reaches the threshold, but the
  probability of synthetic meets the accusation threshold;
- inconclusive (label ``unknown``): anything else.

The *accusation threshold* is the evidence standard for saying synthetic: with
P(synthetic) = 1 − the calibrated probability of ``real``, the
``1 − accusation_rate`` quantile of P(synthetic) over the real validation
images that pass the novelty gate, so at most ``accusation_rate`` (1 % by
default) of held-out real images inside the domain would be accused. A
dataset without real images has none: such a model attributes among
generators and never says ``real``.

Numpy only: the detectors hand in probabilities and features.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vestige.core.errors import InvalidInputError
from vestige.plugin import outcome_of

DOMAIN_FORMAT = "vestige-domain/1"
#: Header key of the domain record inside an artifact's ``info``.
DOMAIN_KEY = "domain"
#: Tensor names of the novelty model inside an artifact.
MEANS_TENSOR = "domain.novelty.means"
PRECISION_TENSOR = "domain.novelty.precision"
TENSOR_PREFIX = "domain."
#: Default share of in-distribution validation images the novelty threshold keeps.
NOVELTY_KEEP = 0.98
#: Default share of real validation images the accusation threshold may accuse.
ACCUSATION_RATE = 0.01
#: Ledoit–Wolf-style shrinkage of the shared covariance towards its mean variance.
SHRINKAGE = 0.1
#: Relative tolerance when comparing an image's aspect and scale with the validated sizes.
SIZE_TOLERANCE = 0.02
REAL = "real"


@dataclass(frozen=True)
class DomainScores:
    """What a detector computes on in-domain images for the domain's decisions.

    ``probabilities``: calibrated class probabilities (N×C, the artifact's
    sources in order); ``features``: the novelty features (N×D).
    """

    probabilities: np.ndarray
    features: np.ndarray


def p_synthetic(probabilities: np.ndarray, sources: Sequence[str]) -> np.ndarray | None:
    """P(synthetic) = 1 − the calibrated probability of ``real``; ``None`` for a model without a real class."""
    if REAL not in sources:
        return None
    return 1.0 - np.asarray(probabilities, dtype=np.float64)[:, list(sources).index(REAL)]


@dataclass(frozen=True)
class Decision:
    """One image's outcome inside the domain: label, source, calibrated confidence and the domain evidence."""

    label: str
    source: str | None
    confidence: float
    evidence: dict[str, Any]

    @property
    def outcome(self) -> str:
        return outcome_of(self.label, self.source)


# -- novelty -------------------------------------------------------------------


@dataclass(frozen=True)
class Novelty:
    """Class means and the shared precision matrix of a tied-covariance Gaussian on features."""

    means: np.ndarray
    precision: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, classes: Sequence[int], *,
            shrinkage: float = SHRINKAGE) -> Novelty:
        x = np.asarray(features, dtype=np.float64)
        labels = np.asarray(labels)
        means = []
        centred = []
        for c in classes:
            members = x[labels == c]
            if len(members) == 0:
                raise InvalidInputError(f"cannot fit the novelty model: class {c} has no training images")
            mean = members.mean(axis=0)
            means.append(mean)
            centred.append(members - mean)
        residual = np.concatenate(centred)
        covariance = residual.T @ residual / max(1, len(residual) - len(classes))
        scale = float(np.trace(covariance)) / covariance.shape[0] or 1.0
        covariance = (1.0 - shrinkage) * covariance + shrinkage * scale * np.eye(covariance.shape[0])
        precision = np.linalg.inv(covariance)
        precision = (precision + precision.T) / 2
        return cls(np.stack(means), precision)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of every image to every class mean, over √D (N×K)."""
        x = np.asarray(features, dtype=np.float64)
        if len(x) == 0:
            return np.zeros((0, len(self.means)))
        means = self.means.astype(np.float64)
        precision = self.precision.astype(np.float64)
        xp = x @ precision
        mp = means @ precision
        squared = (np.einsum("nd,nd->n", xp, x)[:, None] - 2 * xp @ means.T + np.einsum("kd,kd->k", mp, means)[None, :])
        return np.sqrt(np.maximum(squared, 0.0) / x.shape[1])

    def thresholds(self, features: np.ndarray, labels: np.ndarray, keep: float) -> list[float]:
        """Per class, the distance that keeps a share ``keep`` of that class's (validation) images."""
        distances = self.distances(features)
        labels = np.asarray(labels)
        return [quantile_threshold(distances[labels == k, k], keep) for k in range(len(self.means))]

    def tensors(self) -> dict[str, np.ndarray]:
        return {MEANS_TENSOR: self.means.astype(np.float32), PRECISION_TENSOR: self.precision.astype(np.float32)}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, np.ndarray]) -> Novelty:
        return cls(np.asarray(tensors[MEANS_TENSOR], np.float64), np.asarray(tensors[PRECISION_TENSOR], np.float64))


def quantile_threshold(values: np.ndarray, keep: float) -> float:
    """The smallest value with a share ``keep`` of ``values`` at or below it (inf when empty)."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    if len(values) == 0:
        return math.inf
    index = min(len(values) - 1, max(0, math.ceil(keep * len(values)) - 1))
    return float(values[index])


# -- gates 1 and 2: geometry and JPEG history -------------------------------------


def describe_sizes(sizes: Sequence[Sequence[int]]) -> str:
    shown = sorted({f"{w}×{h}" for w, h in sizes})
    return ", ".join(shown[:4]) + (f" and {len(shown) - 4} more sizes" if len(shown) > 4 else "")


def size_admitted(width: int, height: int, domain: Mapping[str, Any]) -> bool:
    low, high = domain.get("scale_range", (1.0, 1.0))
    for sw, sh in domain["sizes"]:
        sx, sy = width / sw, height / sh
        if abs(sx - sy) <= SIZE_TOLERANCE * max(sx, sy) and low * (1 - SIZE_TOLERANCE) <= sx <= high * (1 + SIZE_TOLERANCE):
            return True
    return False


def jpeg_quality_of(data: bytes, fmt: str) -> int | None | str:
    """The estimated IJG quality of a JPEG file, ``"non-standard"`` for tables no IJG quality matches, ``None`` otherwise."""
    if fmt.upper() not in ("JPEG", "MPO"):
        return None
    from PIL import Image

    from vestige.evidence.jpegquality import estimate_jpeg_quality

    with Image.open(io.BytesIO(data)) as image:
        estimate = estimate_jpeg_quality(image)
    if estimate is None:
        return "non-standard"
    return estimate.quality if estimate.error <= 1.0 else "non-standard"


NO_DOMAIN = ("the model artifact records no validated domain, so no image is known to be inside it; "
             "refit it with `vestige models refit-domain`")


def admit_size(domain: Mapping[str, Any], *, width: int, height: int) -> str | None:
    """``None`` when the image's size passes the geometry gate, else the one-sentence reason it does not."""
    if size_admitted(width, height, domain):
        return None
    low, high = domain.get("scale_range", (1.0, 1.0))
    scaled = "" if (low, high) == (1.0, 1.0) else f" (scaled {low:g}–{high:g})"
    return (f"outside the validated domain: a {width}×{height} image, the model was validated on "
            f"{describe_sizes(domain['sizes'])} images{scaled}")


def admit_jpeg(domain: Mapping[str, Any], *, data: bytes, fmt: str) -> str | None:
    """``None`` when the file passes the JPEG-history gate, else the one-sentence reason it does not.

    The JPEG history belongs to the file, so a tile of it passes or fails with the whole image."""
    qualities = domain.get("jpeg_qualities")
    quality = jpeg_quality_of(data, fmt)
    if quality is not None and "jpeg_qualities" in domain:
        if qualities is None:
            return "outside the validated domain: a JPEG file, and the model was validated on no JPEG-compressed images"
        if quality == "non-standard":
            return (f"outside the validated domain: a JPEG with non-standard quantisation tables, the model was "
                    f"validated on JPEG qualities {qualities[0]}–{qualities[1]}")
        if not qualities[0] <= int(quality) <= qualities[1]:
            return (f"outside the validated domain: a JPEG of quality about {quality}, the model was validated on "
                    f"JPEG qualities {qualities[0]}–{qualities[1]}")
    return None


def admit(domain: Mapping[str, Any] | None, *, width: int, height: int, data: bytes, fmt: str) -> str | None:
    """``None`` when the image passes the geometry and JPEG gates, else the one-sentence reason it does not."""
    if domain is None:
        return NO_DOMAIN
    return admit_size(domain, width=width, height=height) or admit_jpeg(domain, data=data, fmt=fmt)


# -- gate 3 and the four outcomes ------------------------------------------------------


def decide(domain: Mapping[str, Any], novelty: Novelty, scores: DomainScores, sources: Sequence[str],
           threshold: float) -> list[Decision]:
    """The outcome of every in-domain image (see the module docstring for the rules).

    ``novelty``'s class means are in the order of ``sources``; the domain's
    ``novelty.thresholds`` give each class's distance threshold.
    """
    limits = [float(t) for t in domain["novelty"]["thresholds"]]
    accuse_at = (domain.get("accusation") or {}).get("threshold")
    distances = novelty.distances(scores.features)
    probabilities = np.asarray(scores.probabilities, dtype=np.float64)
    synthetic = p_synthetic(probabilities, sources)
    out = []
    for i, p in enumerate(probabilities):
        top = int(np.argmax(p))
        distance, limit = float(distances[i, top]), limits[top]
        p_syn = None if synthetic is None else float(synthetic[i])
        if distance > limit:
            evidence: dict[str, Any] = {"in_domain": False, "novelty": distance, "novelty_threshold": limit,
                                        "accusation_threshold": accuse_at, "p_synthetic": p_syn}
            evidence["reason"] = (f"outside the validated domain: novelty {distance:.2f} above {limit:.2f} for the top "
                                  f"candidate {sources[top]} (the image's features are unlike that source's validation "
                                  f"images)")
            out.append(Decision("unknown", None, float(p[top]), evidence))
        else:
            out.append(conclude(p, sources, threshold, accuse_at, novelty=(distance, limit)))
    return out


def conclude(p: np.ndarray, sources: Sequence[str], threshold: float, accuse_at: float | None, *,
             novelty: tuple[float, float] | None = None) -> Decision:
    """The outcome of calibrated probabilities ``p`` (one per source) found inside the domain.

    ``threshold`` is the open-set threshold, ``accuse_at`` the accusation
    threshold (``None``: the artifact has none, as for a model without a
    ``real`` class); ``novelty`` the (distance, threshold) the image passed.
    Used for one image by :func:`decide` and for a tiled image's aggregated
    probabilities by :mod:`vestige.analysis.tiles`.
    """
    p = np.asarray(p, dtype=np.float64)
    top = int(np.argmax(p))
    candidate, confidence = sources[top], float(p[top])
    synthetic = p_synthetic(p[None, :], sources)
    p_syn = None if synthetic is None else float(synthetic[0])
    evidence: dict[str, Any] = {"in_domain": True}
    if novelty is not None:
        evidence.update(novelty=novelty[0], novelty_threshold=novelty[1])
    evidence.update(accusation_threshold=accuse_at, p_synthetic=p_syn, reason=None)
    accusable = accuse_at is None or (p_syn is not None and p_syn >= float(accuse_at))
    if confidence >= threshold and candidate == REAL:
        return Decision("real", None, confidence, evidence)
    if confidence >= threshold and accusable:
        return Decision("synthetic", candidate, confidence, evidence)
    if accuse_at is not None and p_syn is not None and p_syn >= float(accuse_at):
        evidence["reason"] = (f"synthetic by the evidence standard (P(synthetic) {p_syn:.3f} ≥ {float(accuse_at):.3f}) "
                              f"but no known generator reaches the attribution threshold {threshold:.3f} "
                              f"(top candidate {candidate}, {confidence:.3f})")
        return Decision("synthetic", None, p_syn, evidence)
    if confidence >= threshold:
        evidence["reason"] = (f"top candidate {candidate} at {confidence:.3f}, but P(synthetic) {p_syn:.3f} is below "
                              f"the evidence standard for saying synthetic ({float(accuse_at):.3f})")
        return Decision("unknown", None, confidence, evidence)
    evidence["reason"] = (f"calibrated maximum probability {confidence:.3f} is below the open-set threshold "
                          f"{threshold:.3f}: not attributed (top candidate {candidate})")
    return Decision("unknown", None, confidence, evidence)


def outside(reason: str) -> dict[str, Any]:
    """The domain evidence of an image refused by the geometry or JPEG gate."""
    return {"in_domain": False, "reason": reason}
