"""Holdout metrics for a binary scorer (the metric functions themselves are in core)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shipyard.core.errors import DataError
from shipyard.core.metrics import brier_score, precision_at_k, ranking_metrics, recall_at_fpr

__all__ = ["binary_metrics", "precision_at_k", "precision_at_k_name", "recall_at_fpr"]


def precision_at_k_name(k: float) -> str:
    """``precision_at_100`` for a count, ``precision_at_1pct`` for a share of the holdout."""
    if isinstance(k, int):
        return f"precision_at_{k}"
    return f"precision_at_{k * 100:g}pct"


def binary_metrics(
    labels: np.ndarray, scores: np.ndarray, precision_at: Sequence[float] = (100, 0.01)
) -> dict[str, float]:
    """AUC-PR, AUC-ROC, recall at 1 % FPR, precision at each k, Brier score and the base rate.

    An integer k counts rows; a fraction is that share of the holdout (at least one row).
    """
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise DataError(
            f"the holdout has {positives} positives among {len(labels)} rows; "
            "metrics need both classes — use more data or a larger holdout"
        )
    metrics = {
        **ranking_metrics(labels, scores),
        "brier": brier_score(labels, scores),
        "base_rate": positives / len(labels),
        "holdout_rows": float(len(labels)),
    }
    for k in precision_at:
        count = k if isinstance(k, int) else max(1, int(round(k * len(labels))))
        metrics[precision_at_k_name(k)] = precision_at_k(labels, scores, count)
    return metrics
