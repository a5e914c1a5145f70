"""One set of metric functions for training's holdout and the monitor's live quality."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from shipyard.core.metrics import brier_score, ranking_metrics
from shipyard.monitor.quality import binary_quality
from shipyard.train.metrics import binary_metrics


def test_training_and_monitoring_score_the_same_rows_identically() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.random(4000) < 0.05).astype(np.int8)
    scores = np.clip(labels * 0.3 + rng.random(4000) * 0.7, 0, 1)

    ranking = ranking_metrics(labels, scores)
    assert ranking["auc_pr"] == pytest.approx(average_precision_score(labels, scores))
    assert ranking["auc_roc"] == pytest.approx(roc_auc_score(labels, scores))
    trained = binary_metrics(labels, scores)
    live = binary_quality(labels, scores)
    for name in ("auc_pr", "auc_roc", "recall_at_1pct_fpr", "brier"):
        assert live[name] == trained[name], name
    assert 0.0 < trained["recall_at_1pct_fpr"] < 1.0


def test_brier_score_is_the_mean_squared_gap() -> None:
    assert brier_score(np.array([1, 0]), np.array([0.5, 0.0])) == pytest.approx(0.125)
