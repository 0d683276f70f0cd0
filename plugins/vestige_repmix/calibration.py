"""Calibrated attribution probabilities and the open-set rule, on numpy arrays.

The same conventions as the fingerprint detector: one temperature ``T``
divides every logit, fitted on validation by minimising the negative
log-likelihood; an image whose calibrated maximum probability is below ``τ``
is ``unknown``, where ``τ`` keeps a fraction ``keep`` of the correctly
classified validation images above it.
"""

from __future__ import annotations

import math

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under the tempered softmax."""
    p = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.maximum(p, 1e-300))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising validation NLL: a log-spaced scan, then a refinement around its best point."""
    if len(labels) == 0:
        return 1.0
    grid = np.geomspace(0.05, 20.0, 61)
    best = grid[int(np.argmin([nll(logits, labels, t) for t in grid]))]
    fine = np.geomspace(best / 1.15, best * 1.15, 41)
    return float(fine[int(np.argmin([nll(logits, labels, t) for t in fine]))])


def open_set_threshold(probabilities: np.ndarray, labels: np.ndarray, *, keep: float = 0.95) -> float:
    """τ such that at least ``keep`` of the correctly classified images have max probability ≥ τ (0 if none is)."""
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    top = np.sort(probabilities.max(axis=1)[correct])
    if len(top) == 0:
        return 0.0
    return float(top[int(math.floor((1.0 - keep) * len(top) + 1e-9))])
