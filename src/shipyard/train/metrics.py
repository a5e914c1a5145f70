"""Holdout metrics for a binary scorer."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from shipyard.core.errors import DataError


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """The highest recall reachable while the false-positive rate stays at or below ``max_fpr``."""
    fpr, tpr, _ = roc_curve(labels, scores)
    allowed = fpr <= max_fpr
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def binary_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC-PR, AUC-ROC, recall at 1 % FPR and the base rate on one holdout."""
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise DataError(
            f"the holdout has {positives} positives among {len(labels)} rows; "
            "metrics need both classes — use more data or a larger holdout"
        )
    return {
        "auc_pr": float(average_precision_score(labels, scores)),
        "auc_roc": float(roc_auc_score(labels, scores)),
        "recall_at_1pct_fpr": recall_at_fpr(labels, scores, 0.01),
        "base_rate": positives / len(labels),
        "holdout_rows": float(len(labels)),
    }
