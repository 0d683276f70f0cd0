"""Scores of an attribution or verification run: the source a finding names, accuracy, NMI, macro-F1, AUROC,
confusion counts.

Plain numpy, so the numbers are easy to check by hand: NMI is the mutual
information over the arithmetic mean of the two entropies (scikit-learn's
default), macro-F1 averages the per-class F1 over the true classes, AUROC is
the Mann–Whitney probability that a positive outscores a negative (ties count
one half).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from vestige.plugin import Finding
from vestige.plugin.training import REAL

__all__ = ["UNATTRIBUTED", "UNKNOWN", "accuracy", "auroc", "confusion_matrix", "macro_f1",
           "normalized_mutual_information", "predicted_source"]

UNKNOWN = "unknown"
#: What :func:`predicted_source` calls a synthetic verdict that names no generator.
UNATTRIBUTED = "synthetic"


def predicted_source(finding: Finding) -> str:
    """The source a finding names: ``real``, a generator, ``synthetic`` (unattributed) or ``unknown``."""
    if finding.error or finding.label == UNKNOWN:
        return UNKNOWN
    if finding.label == REAL:
        return REAL
    return finding.source or UNATTRIBUTED


def accuracy(true: Sequence[Hashable], predicted: Sequence[Hashable]) -> float | None:
    """Share of equal pairs; ``None`` for no pairs."""
    if len(true) != len(predicted):
        raise ValueError("true and predicted labels differ in length")
    return None if not true else sum(t == p for t, p in zip(true, predicted)) / len(true)


def _codes(labels: Sequence[Hashable]) -> np.ndarray:
    index: dict[Hashable, int] = {}
    return np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64)


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_information(true: Sequence[Hashable], predicted: Sequence[Hashable]) -> float | None:
    """NMI of two labellings (arithmetic normalisation); 1.0 when both put everything in one cluster."""
    if len(true) != len(predicted):
        raise ValueError("true and predicted labels differ in length")
    if not true:
        return None
    a, b = _codes(true), _codes(predicted)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    h_true, h_pred = _entropy(table.sum(1)), _entropy(table.sum(0))
    if h_true == 0 and h_pred == 0:
        return 1.0
    joint = table / table.sum()
    outer = joint.sum(1, keepdims=True) @ joint.sum(0, keepdims=True)
    nz = joint > 0
    mutual = float((joint[nz] * np.log(joint[nz] / outer[nz])).sum())
    return max(0.0, min(1.0, mutual / ((h_true + h_pred) / 2)))


def macro_f1(true: Sequence[Hashable], predicted: Sequence[Hashable], labels: Sequence[Hashable] | None = None) -> float | None:
    """Mean F1 over ``labels`` (default: the classes present in ``true``); F1 is 0 where undefined."""
    if len(true) != len(predicted):
        raise ValueError("true and predicted labels differ in length")
    classes = list(dict.fromkeys(true)) if labels is None else list(labels)
    if not classes:
        return None
    scores = []
    for label in classes:
        tp = sum(t == label and p == label for t, p in zip(true, predicted))
        n_pred = sum(p == label for p in predicted)
        n_true = sum(t == label for t in true)
        scores.append(0.0 if tp == 0 else 2 * tp / (n_pred + n_true))
    return float(np.mean(scores))


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` (higher means positive); ``None`` without both classes."""
    from scipy.stats import rankdata

    s, y = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s)  # ties get their average rank: the one-half of Mann–Whitney
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def confusion_matrix(true: Sequence[Hashable], predicted: Sequence[Hashable], rows: Sequence[Hashable],
                     columns: Sequence[Hashable]) -> list[list[int]]:
    """Counts: ``rows`` are true labels, ``columns`` predicted ones; pairs outside them are left out."""
    r = {label: i for i, label in enumerate(rows)}
    c = {label: j for j, label in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in rows]
    for t, p in zip(true, predicted):
        if t in r and p in c:
            matrix[r[t]][c[p]] += 1
    return matrix
