"""Scores of an attribution or verification run: the source a finding names, accuracy, NMI, macro-F1, AUROC,
confusion counts.

Each score is scikit-learn's (imported when first used), on labels of any
hashable type encoded as integers, with Vestige's conventions on top: ``None``
where a score is undefined (no pairs, one class only), NMI normalised by the
arithmetic mean of the two entropies, macro-F1 averaged over the true classes
(or the ``labels`` given) with 0 where a class's F1 is undefined, AUROC the
Mann–Whitney probability that a positive outscores a negative (ties count one
half), confusion counts over rows and columns that need not be the same
labels. tests/test_attribution_metrics.py checks them against brute-force
definitions.
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


def _encoded(*labellings: Sequence[Hashable]) -> list[np.ndarray]:
    """The labellings as integer codes of one shared index, so scikit-learn sees any hashable labels alike."""
    index: dict[Hashable, int] = {}
    return [np.array([index.setdefault(label, len(index)) for label in labels], dtype=np.int64) for labels in labellings]


def _same_length(true: Sequence[Hashable], predicted: Sequence[Hashable]) -> None:
    if len(true) != len(predicted):
        raise ValueError("true and predicted labels differ in length")


def accuracy(true: Sequence[Hashable], predicted: Sequence[Hashable]) -> float | None:
    """Share of equal pairs; ``None`` for no pairs."""
    _same_length(true, predicted)
    if not true:
        return None
    from sklearn.metrics import accuracy_score

    a, b = _encoded(true, predicted)
    return float(accuracy_score(a, b))


def normalized_mutual_information(true: Sequence[Hashable], predicted: Sequence[Hashable]) -> float | None:
    """NMI of two labellings (arithmetic normalisation); 1.0 when both put everything in one cluster."""
    _same_length(true, predicted)
    if not true:
        return None
    from sklearn.metrics import normalized_mutual_info_score

    a, b = _encoded(true, predicted)
    return max(0.0, min(1.0, float(normalized_mutual_info_score(a, b, average_method="arithmetic"))))


def macro_f1(true: Sequence[Hashable], predicted: Sequence[Hashable], labels: Sequence[Hashable] | None = None) -> float | None:
    """Mean F1 over ``labels`` (default: the classes present in ``true``); F1 is 0 where undefined."""
    _same_length(true, predicted)
    classes = list(dict.fromkeys(true)) if labels is None else list(labels)
    if not classes:
        return None
    from sklearn.metrics import f1_score

    a, b, c = _encoded(true, predicted, classes)
    return float(f1_score(a, b, labels=c, average="macro", zero_division=0.0))


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` (higher means positive; ties count one half, as Mann–Whitney's);
    ``None`` without both classes."""
    y = np.asarray(positive, dtype=bool)
    if y.all() or not y.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def confusion_matrix(true: Sequence[Hashable], predicted: Sequence[Hashable], rows: Sequence[Hashable],
                     columns: Sequence[Hashable]) -> list[list[int]]:
    """Counts: ``rows`` are true labels, ``columns`` predicted ones; pairs outside them are left out."""
    _same_length(true, predicted)
    from sklearn.metrics import confusion_matrix as counts

    a, b, r, c = _encoded(true, predicted, rows, columns)
    every = np.unique(np.concatenate([r, c])) if len(r) + len(c) else np.zeros(0, dtype=np.int64)
    if not len(a) or not len(every):
        return [[0] * len(columns) for _ in rows]
    position = {int(code): i for i, code in enumerate(every)}
    table = counts(a, b, labels=every)
    return [[int(table[position[int(i)], position[int(j)]]) for j in c] for i in r]
