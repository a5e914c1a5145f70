"""Scores of a binary classifier against 0/1 labels, shared by training and monitoring.

A version's holdout metrics (training) and its live quality (the monitor) must be computed
the same way, or a quality baseline would drift from its own model; both call these.
"""

from __future__ import annotations

import numpy as np


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """The highest recall reachable while the false-positive rate stays at or below ``max_fpr``."""
    # Imported here: scikit-learn takes seconds to import, and most commands never score.
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    allowed = fpr <= max_fpr
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def ranking_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUC-PR, AUC-ROC and recall at 1 % FPR; ``labels`` must hold both classes."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "auc_pr": float(average_precision_score(labels, scores)),
        "auc_roc": float(roc_auc_score(labels, scores)),
        "recall_at_1pct_fpr": recall_at_fpr(labels, scores, 0.01),
    }


def precision_at_k(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of positives among the ``k`` highest scores (ties broken by row order)."""
    k = min(k, len(scores))
    top = np.argsort(-scores, kind="stable")[:k]
    return float(np.asarray(labels)[top].sum() / k) if k else 0.0


def brier_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean squared gap between the score and the 0/1 label."""
    y = np.asarray(labels, dtype=np.float64)
    return float(np.mean((np.asarray(scores, dtype=np.float64) - y) ** 2))
