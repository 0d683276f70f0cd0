"""A scikit-learn linear classifier's arrays in one shape for any number of classes."""

from __future__ import annotations

import numpy as np


def class_rows(coef: np.ndarray, intercept: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One weight row and one intercept per class, float64.

    With two classes scikit-learn keeps a single row ``w`` (positive means
    the second class); ``[-w/2, w/2]`` gives the same softmax as the
    two-class sigmoid, so use treats every case alike.
    """
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64).reshape(-1)
    if n_classes == 2 and coef.shape[0] == 1:
        return np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    if coef.shape[0] != n_classes:
        raise ValueError(f"a linear model with {coef.shape[0]} rows for {n_classes} classes")
    return coef, intercept
