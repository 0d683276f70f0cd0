"""Turning a baseline's raw per-source numbers into probabilities, fitted on the validation split.

A baseline's raw output is one number per source (a distance, an SVM
decision value, a correlation). Its probabilities are
``softmax(z / T + b)``: a temperature ``T`` and, where the detector asks for
them, per-source offsets ``b`` (``b`` of the first source fixed at 0). Both
are fitted by minimising the cross-entropy on the validation split, which is
convex in ``(1/T, b)`` so the fit has one answer and no random start.

The targets are smoothed as Platt did for his sigmoid: the true source gets
``1 - ε`` and the others share ``ε = 1/(n + 2)`` for ``n`` validation images.
Without it, a validation split that the raw numbers separate perfectly
(common for small splits) drives ``T`` to zero and every later confidence to
exactly 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


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


def smoothed_targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-hot targets with ``ε = 1/(n + 2)`` spread over the wrong classes."""
    eps = 1.0 / (len(labels) + 2)
    targets = np.full((len(labels), n_classes), eps / max(n_classes - 1, 1))
    targets[np.arange(len(labels)), labels] = 1.0 - eps
    return targets


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
