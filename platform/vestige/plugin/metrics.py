"""Scores a plugin's evaluation commands report, computed as Vestige's benchmarks compute them."""

from __future__ import annotations

from vestige.models.attribution_metrics import (
    accuracy, auroc, confusion_matrix, macro_f1, normalized_mutual_information, predicted_source,
)

__all__ = ["accuracy", "auroc", "confusion_matrix", "macro_f1", "normalized_mutual_information", "predicted_source"]
