"""Holdout metrics for a binary scorer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shipyard.core.errors import DataError


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """The highest recall reachable while the false-positive rate stays at or below ``max_fpr``."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    allowed = fpr <= max_fpr
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def precision_at_k(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of positives among the ``k`` highest scores (ties broken by row order)."""
    k = min(k, len(scores))
    top = np.argsort(-scores, kind="stable")[:k]
    return float(np.asarray(labels)[top].sum() / k) if k else 0.0


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
    # Imported here: scikit-learn takes seconds to import, and most commands never score.
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise DataError(
            f"the holdout has {positives} positives among {len(labels)} rows; "
            "metrics need both classes — use more data or a larger holdout"
        )
    metrics = {
        "auc_pr": float(average_precision_score(labels, scores)),
        "auc_roc": float(roc_auc_score(labels, scores)),
        "recall_at_1pct_fpr": recall_at_fpr(labels, scores, 0.01),
        "brier": float(brier_score_loss(labels, scores)),
        "base_rate": positives / len(labels),
        "holdout_rows": float(len(labels)),
    }
    for k in precision_at:
        count = k if isinstance(k, int) else max(1, int(round(k * len(labels))))
        metrics[precision_at_k_name(k)] = precision_at_k(labels, scores, count)
    return metrics
