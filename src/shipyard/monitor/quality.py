"""Model quality once ground truth arrives: predictions joined to delayed labels, scored, compared.

Labels come days after the predictions (chargebacks), separately, keyed by the event id the
prediction was made for. Each run joins what has arrived so far, so the quality of an old window
is back-filled as its labels land. Example::

    joined = join_labels("captured.parquet", "labels.parquet")
    statistics = quality_statistics(joined.labels, joined.scores, threshold=0.5)
    constraints = suggest_constraints(statistics, tolerance=0.1)    # from a baseline window
    violations = check_constraints(today_statistics, constraints)

The files have SageMaker's model-quality shapes: statistics.json holds
``binary_classification_metrics`` (each ``{"value", "standard_deviation"}``), constraints.json
``binary_classification_constraints`` (each ``{"threshold", "comparison_operator"}``), and a
violation is ``{"constraint_check_type": <operator>, "description", "metric_name"}``. Metric names
are the ones training records for a model version (auc_pr, auc_roc, recall_at_1pct_fpr, brier),
so a version's holdout metrics are a baseline as they are, plus precision, recall and f1 at the
decision threshold. A metric a window cannot define (AUC with one class) is null and not checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from shipyard.core.errors import DataError, InvalidRequestError
from shipyard.core.metrics import brier_score, ranking_metrics
from shipyard.monitor._data import Data, collect, scan, schema

METRICS = ("auc_pr", "auc_roc", "recall_at_1pct_fpr", "precision", "recall", "f1", "brier")
LOWER_IS_BETTER = frozenset({"brier"})
LESS_THAN = "LessThanThreshold"
GREATER_THAN = "GreaterThanThreshold"
# SageMaker's rule: a standard deviation needs 200 rows, from 5 resamples of 80 % of them.
MIN_ROWS_FOR_STD = 200
RESAMPLES = 5
RESAMPLE_SHARE = 0.8


@dataclass(frozen=True)
class LabelledPredictions:
    """Predictions that have their label, and how many still wait for one."""

    frame: pl.DataFrame
    pending: int
    score_column: str
    label_column: str

    @property
    def scores(self) -> np.ndarray:
        return self.frame.get_column(self.score_column).cast(pl.Float64).to_numpy()

    @property
    def labels(self) -> np.ndarray:
        return self.frame.get_column(self.label_column).cast(pl.Int8).to_numpy()


def join_labels(
    predictions: Data,
    labels: Data,
    *,
    key: str = "event_id",
    score: str = "score",
    label: str = "is_fraud",
) -> LabelledPredictions:
    """Predictions inner-joined to their labels by ``key``; a re-sent label replaces the first."""
    scanned = scan(predictions, "predictions")
    truth = scan(labels, "labels")
    _require(schema(scanned, "predictions"), (key, score), "predictions")
    _require(schema(truth, "labels"), (key, label), "labels")
    truth = truth.select(key, label).unique(subset=key, keep="last", maintain_order=True)
    joined = scanned.join(truth, on=key, how="left")
    frame = collect(joined, joined.collect_schema().names(), "predictions")
    has_label = frame.get_column(label).is_not_null()
    labelled = frame.filter(has_label)
    values = set(labelled.get_column(label).unique().to_list())
    if not values <= {0, 1}:
        raise DataError(f"label column {label!r} must hold 0/1, found {sorted(map(str, values))}")
    return LabelledPredictions(labelled, frame.height - labelled.height, score, label)


def binary_quality(
    labels: np.ndarray, scores: np.ndarray, *, threshold: float = 0.5
) -> dict[str, float | None]:
    """Every metric of METRICS for one set of rows; None where the rows cannot define it."""
    y = np.asarray(labels).astype(np.int8)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    has_both = 0 < positives < len(y)
    predicted = s >= threshold
    true_positives = int((predicted & (y == 1)).sum())
    precision = true_positives / int(predicted.sum()) if predicted.any() else None
    recall = true_positives / positives if positives else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    result: dict[str, float | None] = {
        "auc_pr": None,
        "auc_roc": None,
        "recall_at_1pct_fpr": None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "brier": brier_score(y, s) if len(y) else None,
    }
    if has_both:
        result.update(ranking_metrics(y, s))
    return result


def quality_statistics(
    labels: np.ndarray, scores: np.ndarray, *, threshold: float = 0.5, seed: int = 0
) -> dict[str, Any]:
    """statistics.json content: each metric's value and standard deviation, plus counts."""
    if len(labels) == 0:
        raise DataError("no prediction has its label yet; model quality needs labelled rows")
    values = binary_quality(labels, scores, threshold=threshold)
    spread = _standard_deviations(labels, scores, threshold, seed)
    metrics = {
        name: {"value": values[name], "standard_deviation": spread.get(name, "NaN")}
        for name in METRICS
    }
    positives = int(np.asarray(labels).sum())
    return {
        "version": 0.0,
        "dataset": {"item_count": len(labels), "positives": positives, "threshold": threshold},
        "binary_classification_metrics": metrics,
    }


def suggest_constraints(baseline: Mapping[str, Any], *, tolerance: float = 0.1) -> dict[str, Any]:
    """constraints.json content from baseline statistics (or a version's metrics dict).

    A higher-is-better metric violates when it falls below ``(1 - tolerance)`` of its baseline
    value; Brier when it rises above ``(1 + tolerance)`` of it.
    """
    if not 0 <= tolerance < 1:
        raise InvalidRequestError(f"tolerance must be in [0, 1), got {tolerance!r}")
    values = _metric_values(baseline)
    constraints = {}
    for name in METRICS:
        value = values.get(name)
        if value is None:
            continue
        worse = name in LOWER_IS_BETTER
        constraints[name] = {
            "threshold": value * (1 + tolerance if worse else 1 - tolerance),
            "comparison_operator": GREATER_THAN if worse else LESS_THAN,
        }
    return {"version": 0.0, "binary_classification_constraints": constraints}


def check_constraints(
    statistics: Mapping[str, Any], constraints: Mapping[str, Any]
) -> dict[str, Any]:
    """``{"violations": [...]}``: every constrained metric on the wrong side of its threshold."""
    metrics = statistics.get("binary_classification_metrics", {})
    violations = []
    for name, constraint in constraints.get("binary_classification_constraints", {}).items():
        operator, threshold = constraint["comparison_operator"], float(constraint["threshold"])
        if operator not in (LESS_THAN, GREATER_THAN):
            raise InvalidRequestError(
                f"constraint {name!r} has comparison_operator {operator!r}; "
                f"use {LESS_THAN} or {GREATER_THAN}"
            )
        measured = metrics.get(name, {})
        value = measured.get("value")
        if value is None:
            continue
        if (value < threshold) if operator == LESS_THAN else (value > threshold):
            spread = measured.get("standard_deviation", "NaN")
            spread_text = f"{spread:.4g}" if isinstance(spread, float) else str(spread)
            violations.append(
                {
                    "constraint_check_type": operator,
                    "description": (
                        f"Metric {name} with {value:.4g} +/- {spread_text} was {operator} "
                        f"'{threshold:.4g}'"
                    ),
                    "metric_name": name,
                }
            )
    return {"violations": violations}


def quality_by_window(
    joined: LabelledPredictions, *, time_column: str, every: str = "1d", threshold: float = 0.5
) -> list[dict[str, Any]]:
    """Metrics per time window of the predictions (``every`` is a Polars duration, e.g. "6h")."""
    frame = joined.frame
    if time_column not in frame.columns:
        raise DataError(f"predictions have no time column {time_column!r}")
    start = _as_datetime(frame, time_column).dt.truncate(every).alias("_window")
    windows = frame.with_columns(start).sort("_window")
    rows = []
    for (window,), part in windows.group_by("_window", maintain_order=True):
        labels = part.get_column(joined.label_column).cast(pl.Int8).to_numpy()
        scores = part.get_column(joined.score_column).cast(pl.Float64).to_numpy()
        rows.append(
            {
                "window_start": window.isoformat() if window is not None else None,
                "rows": part.height,
                "positives": int(labels.sum()),
                **binary_quality(labels, scores, threshold=threshold),
            }
        )
    return rows


def _standard_deviations(
    labels: np.ndarray, scores: np.ndarray, threshold: float, seed: int
) -> dict[str, float]:
    n = len(labels)
    if n < MIN_ROWS_FOR_STD:
        return {}
    generator = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in METRICS}
    for _ in range(RESAMPLES):
        rows = generator.choice(n, size=int(n * RESAMPLE_SHARE), replace=False)
        for name, value in binary_quality(labels[rows], scores[rows], threshold=threshold).items():
            if value is not None:
                draws[name].append(value)
    return {name: float(np.std(found)) for name, found in draws.items() if len(found) > 1}


def _metric_values(baseline: Mapping[str, Any]) -> dict[str, float | None]:
    """Metric values from statistics.json content or from a flat {name: value} mapping."""
    metrics = baseline.get("binary_classification_metrics")
    if metrics is None:
        return {k: _number(v) for k, v in baseline.items() if k in METRICS}
    return {name: _number(entry.get("value")) for name, entry in metrics.items()}


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _as_datetime(frame: pl.DataFrame, column: str) -> pl.Expr:
    if frame.schema[column] == pl.String():
        return pl.col(column).str.to_datetime(time_zone="UTC", strict=False)
    return pl.col(column)


def _require(found: pl.Schema, columns: tuple[str, ...], role: str) -> None:
    missing = [c for c in columns if c not in found]
    if missing:
        raise DataError(
            f"{role} lack column(s) {', '.join(map(repr, missing))}; "
            f"they have: {', '.join(found.names())}"
        )
