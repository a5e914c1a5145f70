from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import brier_score_loss, precision_recall_fscore_support

from shipyard.core.errors import DataError
from shipyard.monitor import (
    binary_quality,
    check_constraints,
    join_labels,
    quality_by_window,
    quality_statistics,
    suggest_constraints,
)

RNG = np.random.default_rng(9)
START = datetime(2026, 11, 3, tzinfo=UTC)


def _scores(labels: np.ndarray, signal: float) -> np.ndarray:
    """Scores in [0, 1] that separate the classes by ``signal``."""
    raw = RNG.normal(0, 1, len(labels)) + signal * labels
    return 1 / (1 + np.exp(-(raw - 2)))


def test_threshold_metrics_and_brier_match_scikit_learn() -> None:
    labels = (RNG.random(5000) < 0.1).astype(np.int8)
    scores = _scores(labels, 2.5)

    quality = binary_quality(labels, scores, threshold=0.4)

    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, scores >= 0.4, average="binary"
    )
    assert quality["precision"] == pytest.approx(precision)
    assert quality["recall"] == pytest.approx(recall)
    assert quality["f1"] == pytest.approx(f1)
    assert quality["brier"] == pytest.approx(brier_score_loss(labels, scores))
    assert 0.5 < quality["auc_roc"] <= 1 and quality["recall_at_1pct_fpr"] is not None  # type: ignore[operator]


def test_one_class_windows_leave_undefined_metrics_out() -> None:
    quality = binary_quality(np.zeros(50, dtype=np.int8), RNG.random(50), threshold=2.0)
    assert quality["auc_pr"] is None and quality["auc_roc"] is None and quality["recall"] is None
    assert quality["precision"] is None  # nothing scored above 2.0
    assert quality["brier"] is not None


def test_delayed_labels_join_by_event_id_and_a_resent_label_wins() -> None:
    ids = [f"evt-{i}" for i in range(100)]
    predictions = pl.DataFrame({"event_id": ids, "score": RNG.random(100)})
    arrived = pl.DataFrame(
        {"event_id": [*ids[:60], "evt-0"], "is_fraud": [0] * 60 + [1]}
    )  # 40 labels still to come; evt-0 corrected to fraud

    joined = join_labels(predictions, arrived)

    assert joined.pending == 40 and len(joined.labels) == 60
    assert joined.frame.filter(pl.col("event_id") == "evt-0")["is_fraud"].item() == 1
    with pytest.raises(DataError, match="lack column"):
        join_labels(predictions, arrived.rename({"is_fraud": "label"}))


def test_a_degraded_model_violates_the_baselines_constraints() -> None:
    labels = (RNG.random(4000) < 0.05).astype(np.int8)
    baseline = quality_statistics(labels, _scores(labels, 3.0), threshold=0.5)
    constraints = suggest_constraints(baseline, tolerance=0.1)
    limits = constraints["binary_classification_constraints"]
    assert limits["auc_pr"]["comparison_operator"] == "LessThanThreshold"
    assert limits["brier"]["comparison_operator"] == "GreaterThanThreshold"
    assert limits["auc_pr"]["threshold"] == pytest.approx(
        0.9 * baseline["binary_classification_metrics"]["auc_pr"]["value"]
    )
    assert isinstance(
        baseline["binary_classification_metrics"]["auc_pr"]["standard_deviation"], float
    )

    same = quality_statistics(labels, _scores(labels, 3.0), threshold=0.5)
    worse = quality_statistics(labels, _scores(labels, 0.8), threshold=0.5)

    assert check_constraints(same, constraints) == {"violations": []}
    violated = {v["metric_name"]: v for v in check_constraints(worse, constraints)["violations"]}
    assert {"auc_pr", "auc_roc", "recall"} <= set(violated)
    assert violated["auc_pr"]["constraint_check_type"] == "LessThanThreshold"
    assert violated["auc_pr"]["description"].startswith("Metric auc_pr with ")


def test_a_versions_holdout_metrics_are_a_baseline_as_they_are() -> None:
    constraints = suggest_constraints({"auc_pr": 0.2, "brier": 0.01, "holdout_rows": 9.0})
    assert constraints["binary_classification_constraints"] == {
        "auc_pr": {"threshold": pytest.approx(0.18), "comparison_operator": "LessThanThreshold"},
        "brier": {"threshold": pytest.approx(0.011), "comparison_operator": "GreaterThanThreshold"},
    }


def test_windows_are_back_filled_as_labels_arrive() -> None:
    n = 2000
    ids = [f"evt-{i}" for i in range(n)]
    times = [START + timedelta(hours=48 * i / n) for i in range(n)]  # two days
    labels = (RNG.random(n) < 0.2).astype(np.int8)
    predictions = pl.DataFrame({"event_id": ids, "score": _scores(labels, 2.0), "at": times})
    truth = pl.DataFrame({"event_id": ids, "is_fraud": labels})

    first_day_only = quality_by_window(
        join_labels(predictions, truth.head(n // 2)), time_column="at", every="1d"
    )
    both_days = quality_by_window(join_labels(predictions, truth), time_column="at", every="1d")

    assert [w["window_start"][:10] for w in first_day_only] == ["2026-11-03"]
    assert [w["window_start"][:10] for w in both_days] == ["2026-11-03", "2026-11-04"]
    for key, value in first_day_only[0].items():  # day 1 is unchanged by day 2's labels
        assert both_days[0][key] == (pytest.approx(value) if isinstance(value, float) else value)
    assert both_days[1]["rows"] == n // 2 and both_days[1]["auc_roc"] is not None
