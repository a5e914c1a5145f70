from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_curve

from shipyard.core.errors import DataError
from shipyard.train import (
    TrainResult,
    TrainSpec,
    binary_metrics,
    precision_at_k,
    recall_at_fpr,
    time_split,
    train_xgboost,
)


def test_holdout_is_the_latest_events(trained: TrainResult) -> None:
    frame = pl.DataFrame(
        {
            "event_time": [
                "2026-11-01T00:00:03.000Z",
                "2026-11-01T00:00:01.000Z",
                "2026-11-01T00:00:02.000Z",
                "2026-11-01T00:00:04.000Z",
            ]
        }
    )
    train, holdout = time_split(frame, TrainSpec(holdout_fraction=0.25))
    assert holdout["event_time"].to_list() == ["2026-11-01T00:00:04.000Z"]
    assert train.height == 3
    assert trained.holdout_events["event_time"].min() >= trained.holdout_events["event_time"].min()


def test_model_learns_the_fraud_rule(trained: TrainResult) -> None:
    metrics = trained.metrics
    assert metrics["auc_pr"] > 5 * metrics["base_rate"]
    assert metrics["auc_roc"] > 0.8
    assert 0.0 < metrics["recall_at_1pct_fpr"] <= 1.0
    assert trained.holdout_rows == len(trained.holdout_scores)


def test_recall_at_fpr_matches_the_roc_curve() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(5000) < 0.05
    scores = labels * rng.random(5000) + rng.random(5000)
    fpr, tpr, _ = roc_curve(labels, scores)
    assert recall_at_fpr(labels, scores, 0.01) == pytest.approx(tpr[fpr <= 0.01].max())


def test_constant_or_missing_label_is_refused() -> None:
    frame = pl.DataFrame({"event_time": ["a", "b"], "is_fraud": [0, 0]})
    with pytest.raises(DataError, match="no positive examples among 2 rows"):
        train_xgboost(frame)
    with pytest.raises(DataError, match="constant"):
        train_xgboost(frame.with_columns(is_fraud=1))
    with pytest.raises(DataError, match="missing"):
        train_xgboost(frame.drop("is_fraud"))


def test_precision_at_k_counts_or_shares_and_brier() -> None:
    labels = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2], dtype=np.float32)
    assert precision_at_k(labels, scores, 1) == 1.0
    assert precision_at_k(labels, scores, 3) == pytest.approx(2 / 3)
    assert precision_at_k(labels, scores, 50) == 0.4  # k beyond the holdout: all of it
    metrics = binary_metrics(labels, scores, precision_at=(2, 0.6))
    assert metrics["precision_at_2"] == 0.5
    assert metrics["precision_at_60pct"] == pytest.approx(2 / 3)  # 60 % of 5 rows = top 3
    expected_brier = np.mean((scores.astype(np.float64) - labels) ** 2)
    assert metrics["brier"] == pytest.approx(expected_brier, rel=1e-6)
