"""Calibrated probabilities and the ``unknown`` rule, fitted on the validation split (numpy only).

The same conventions as the fingerprint classifier: one temperature ``T``
divides every logit, chosen to minimise the validation negative
log-likelihood (against Platt-smoothed targets, see
:func:`negative_log_likelihood`); an image whose calibrated top probability is below ``τ`` is
``unknown``, where ``τ`` keeps ``KEEP`` (95 %) of the correctly attributed
validation images above it.
"""

from __future__ import annotations

import math

import numpy as np

KEEP = 0.95
#: Temperatures searched (log-spaced), then refined around the best.
_T_LOW, _T_HIGH = 0.02, 50.0


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Cross-entropy against targets smoothed as Platt did: the true source ``1 − ε``, ``ε = 1/(n + 2)`` shared.

    Without the smoothing a validation split the attributor separates
    perfectly (common for small splits) drives ``T`` to zero and every
    later confidence to exactly 1, and the ``unknown`` threshold with it.
    """
    n, classes = np.asarray(logits).shape
    eps = 1.0 / (n + 2)
    targets = np.full((n, classes), eps / max(classes - 1, 1))
    targets[np.arange(n), labels] = 1.0 - eps
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-(targets * log_p).sum(1).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the smoothed validation NLL: a log-spaced scan, then a finer scan around its best."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    grid = np.geomspace(_T_LOW, _T_HIGH, 61)
    for _ in range(3):
        losses = [negative_log_likelihood(logits, labels, t) for t in grid]
        best = int(np.argmin(losses))
        low, high = grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)]
        grid = np.geomspace(low, high, 21)
    return float(grid[int(np.argmin([negative_log_likelihood(logits, labels, t) for t in grid]))])


def unknown_threshold(probs: np.ndarray, labels: np.ndarray, keep: float = KEEP) -> float:
    """τ: the ⌊(1 − keep)·n⌋-th smallest top probability of the n correctly attributed images (0 when none is)."""
    probs = np.asarray(probs, dtype=np.float64)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    top = np.sort(probs.max(axis=1)[correct])
    if len(top) == 0:
        return 0.0
    return float(top[int(math.floor((1.0 - keep) * len(top) + 1e-9))])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Size-weighted |accuracy − confidence| over equal-width confidence bins."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        return 0.0
    confidence = probs.max(1)
    correct = probs.argmax(1) == np.asarray(labels)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return float(sum(abs(correct[index == b].mean() - confidence[index == b].mean()) * (index == b).sum()
                     for b in range(bins) if (index == b).any()) / len(probs))
