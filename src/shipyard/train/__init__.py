"""Training: fit a model package (feature prep + native-format model + holdout metrics)."""

from __future__ import annotations

from shipyard.train.metrics import binary_metrics, recall_at_fpr
from shipyard.train.trainer import TrainResult, TrainSpec, time_split, train_xgboost

__all__ = [
    "TrainResult",
    "TrainSpec",
    "binary_metrics",
    "recall_at_fpr",
    "time_split",
    "train_xgboost",
]
