"""Calibrated probabilities and the open-set rule, on numpy arrays (no torch needed).

Shared by every trained attribution detector (fingerprint, RepMix, ManiFPT),
so that "calibrated" and ``unknown`` mean the same thing whichever detector
speaks.

Temperature scaling (Guo et al. 2017): one scalar ``T`` divides every logit;
it is fitted on the validation split by minimising the negative
log-likelihood. The NLL is convex in ``1/T``, so a bracketing search on
``1/T`` finds the optimum; ``T`` changes no argmax, only confidences.
Two fitters, for two kinds of scores:

- :func:`fit_temperature`, for a network's logits (of order 1): a bounded
  search, ``1/T`` in [0.001, 50], so a validation split that the logits
  separate perfectly (without smoothing) gives the bound's ``T`` rather than
  0. The fingerprint detector, RepMix and ManiFPT use it.
- :func:`fit_scaling`, for raw per-source scores of any scale (a distance,
  a correlation of 0.01, an SVM's decision value) and optionally per-source
  offsets (``softmax(z / T + b)``, convex in ``(1/T, b)``): L-BFGS from
  ``1/std(z)``, unbounded above, always on smoothed targets
  (:func:`smoothed_targets`). The classic baselines use it. On logits of
  order 1 both give the same ``T`` to about 1e-7; on scores of scale 0.01
  only this one reaches the optimum.

Open set: an image whose calibrated maximum probability is below the
threshold ``τ`` is ``unknown``. ``τ`` is chosen on validation so that a
fraction ``keep`` of the correctly classified validation images stay above
it (:func:`open_set_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Bins of the expected calibration error.
ECE_BINS = 15
#: Search interval of 1/T.
_BETA_LOW, _BETA_HIGH = 1e-3, 50.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` over the last axis (each row of a matrix), in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0, *, smoothed: bool = False) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``.

    ``smoothed``: against targets smoothed as Platt did (the true class
    ``1 − ε``, ``ε = 1/(n + 2)`` shared by the others), so a validation split
    that is separated perfectly does not drive ``T`` to its bound and every
    later confidence to 1.
    """
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1, keepdims=True)
    log_p = z - (top + np.log(np.exp(z - top).sum(axis=1, keepdims=True)))
    labels = np.asarray(labels)
    if not smoothed:
        return float(-np.mean(log_p[np.arange(len(z)), labels]))
    return float(-(smoothed_targets(labels, z.shape[1]) * log_p).sum(axis=1).mean())


def smoothed_targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot targets smoothed as Platt did: the true class ``1 − ε``, ``ε = 1/(n + 2)`` shared by the others."""
    labels = np.asarray(labels, dtype=np.int64)
    eps = 1.0 / (len(labels) + 2)
    targets = np.full((len(labels), n_classes), eps / max(n_classes - 1, 1))
    targets[np.arange(len(labels)), labels] = 1.0 - eps
    return targets


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, smoothed: bool = False, iterations: int = 100) -> float:
    """The temperature that minimises validation NLL (golden-section search on 1/T); ``smoothed`` as in :func:`nll`."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0

    def loss(beta: float) -> float:
        return nll(logits, labels, 1.0 / beta, smoothed=smoothed)

    # Coarse log-spaced scan first: when the validation set is perfectly
    # separated the NLL keeps falling as 1/T grows, and the optimum is the
    # bracket's end; the scan finds which bracket holds the minimum.
    grid = np.geomspace(_BETA_LOW, _BETA_HIGH, 41)
    values = [loss(b) for b in grid]
    best = int(np.argmin(values))
    low, high = grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)]
    ratio = (math.sqrt(5) - 1) / 2
    a, b = low + (1 - ratio) * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(iterations):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = low + (1 - ratio) * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
        if high - low < 1e-7 * high:
            break
    beta = (low + high) / 2
    if loss(beta) > values[best]:
        beta = grid[best]
    return float(1.0 / beta)


@dataclass(frozen=True)
class Scaling:
    """``softmax(z / temperature + offsets)``."""

    temperature: float = 1.0
    offsets: tuple[float, ...] | None = None

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        logits = np.asarray(raw, dtype=np.float64) / self.temperature
        if self.offsets is not None:
            logits = logits + np.asarray(self.offsets, dtype=np.float64)
        return softmax(logits)

    def to_json(self, sources: tuple[str, ...]) -> dict[str, object]:
        out: dict[str, object] = {"temperature": self.temperature}
        if self.offsets is not None:
            out["offsets"] = dict(zip(sources, self.offsets, strict=True))
        return out

    @classmethod
    def from_json(cls, data: dict[str, object], sources: tuple[str, ...]) -> Scaling:
        offsets = data.get("offsets")
        return cls(float(data.get("temperature", 1.0)),  # type: ignore[arg-type]
                   None if offsets is None else tuple(float(offsets[s]) for s in sources))  # type: ignore[index]


def fit_scaling(raw: np.ndarray, labels: np.ndarray, *, offsets: bool = False) -> Scaling:
    """The temperature (and offsets) minimising smoothed cross-entropy on ``raw``; identity without data."""
    from scipy.optimize import minimize

    n, n_classes = raw.shape
    if n == 0:
        return Scaling(1.0, (0.0,) * n_classes if offsets else None)
    raw = np.asarray(raw, dtype=np.float64)
    targets = smoothed_targets(labels, n_classes)
    n_free = n_classes - 1 if offsets else 0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        beta, bias = theta[0], np.concatenate([[0.0], theta[1:]]) if offsets else 0.0
        logits = beta * raw + bias
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        diff = (np.exp(log_p) - targets) / n
        grad = [np.sum(diff * raw)]
        if offsets:
            grad.extend(diff.sum(axis=0)[1:])
        return float(-(targets * log_p).sum() / n), np.asarray(grad)

    spread = float(np.std(raw)) or 1.0
    start = np.concatenate([[1.0 / spread], np.zeros(n_free)])
    bounds = [(1e-9, None)] + [(None, None)] * n_free
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-9})
    beta = float(result.x[0])
    if not offsets:
        return Scaling(1.0 / beta)
    return Scaling(1.0 / beta, (0.0, *(float(b) for b in result.x[1:])))


def calibration_bins(confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, *,
                     bins: int = ECE_BINS) -> tuple[float | None, list[dict[str, Any]]]:
    """ECE over ``bins`` equal-width confidence bins (lo, hi] (a confidence of 0 falls in the first): the
    size-weighted |accuracy − confidence|, and the non-empty bins (``None`` and no bins without images)."""
    conf = np.asarray(confidence, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    if len(conf) == 0:
        return None, []
    index = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    total, table = 0.0, []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        if count:
            accuracy, mean = float(right[members].mean()), float(conf[members].mean())
            total += count * abs(accuracy - mean)
            table.append({"bin": [b / bins, (b + 1) / bins], "count": count, "accuracy": accuracy, "confidence": mean})
    return total / len(conf), table


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """ECE of class probabilities against labels (:func:`calibration_bins` on the top class); 0 without images."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(probabilities) == 0:
        return 0.0
    ece, _ = calibration_bins(probabilities.max(axis=1), probabilities.argmax(axis=1) == np.asarray(labels), bins=bins)
    return float(ece or 0.0)


def open_set_threshold(probabilities: np.ndarray, labels: np.ndarray, *, keep: float = 0.95) -> float:
    """τ such that at least ``keep`` of the correctly classified images have max probability ≥ τ.

    The ⌊(1 − keep)·n⌋-th smallest maximum probability among the n correctly
    classified images; 0 when none is correct (nothing is then refused).
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must lie in (0, 1], not {keep!r}")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    top = np.sort(probabilities.max(axis=1)[correct])
    if len(top) == 0:
        return 0.0
    return float(top[int(math.floor((1.0 - keep) * len(top) + 1e-9))])

