"""Train an XGBoost fraud model on curated events joined with their delayed labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import xgboost as xgb

from shipyard.core.errors import DataError
from shipyard.core.features import FeaturePrep
from shipyard.core.package import PackageContents
from shipyard.train.metrics import binary_metrics

FRAUD_NUMERIC = (
    "amount",
    "card_age_days",
    "txn_count_1h",
    "txn_count_24h",
    "avg_amount_30d",
    "distance_from_home_km",
    "device_trust_score",
    "hour_of_day",
    "merchant_risk_score",
    "prev_chargebacks",
    "account_balance",
)
FRAUD_BOOLEAN = ("is_foreign", "is_weekend")
FRAUD_CATEGORICAL = ("currency", "merchant_category", "country", "channel")
FRAUD_DERIVED = ("log_amount", "amount_to_avg_ratio", "txn_velocity_ratio")


@dataclass(frozen=True)
class TrainSpec:
    """What to train: features, label, hyperparameters and the time-based holdout."""

    label: str = "is_fraud"
    time_column: str = "event_time"
    numeric: tuple[str, ...] = FRAUD_NUMERIC
    boolean: tuple[str, ...] = FRAUD_BOOLEAN
    categorical: tuple[str, ...] = FRAUD_CATEGORICAL
    derived: tuple[str, ...] = FRAUD_DERIVED
    num_rounds: int = 150
    holdout_fraction: float = 0.2
    seed: int = 0
    params: dict[str, Any] = field(
        default_factory=lambda: {
            "objective": "binary:logistic",
            "eval_metric": "aucpr",
            "tree_method": "hist",
            "max_depth": 6,
            "eta": 0.1,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "min_child_weight": 2,
            "max_bin": 128,
        }
    )


@dataclass(frozen=True)
class TrainResult:
    contents: PackageContents
    metrics: dict[str, float]
    train_rows: int
    holdout_rows: int
    holdout_events: pl.DataFrame
    holdout_scores: np.ndarray


def time_split(frame: pl.DataFrame, spec: TrainSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train on the earlier events, hold out the latest ``holdout_fraction`` by event time."""
    ordered = frame.sort(spec.time_column)
    cut = int(len(ordered) * (1.0 - spec.holdout_fraction))
    return ordered.head(cut), ordered.tail(len(ordered) - cut)


def train_xgboost(
    frame: pl.DataFrame,
    spec: TrainSpec | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Fit the prep and the booster, then score the time-based holdout."""
    spec = spec or TrainSpec()
    _check_label(frame, spec.label)
    train, holdout = time_split(frame, spec)
    _check_label(train, spec.label)
    prep = FeaturePrep(spec.numeric, spec.boolean, spec.categorical, spec.derived).fit(train)
    x_train = prep.transform(train).matrix
    y_train = train[spec.label].cast(pl.Float32).to_numpy()
    x_holdout = prep.transform(holdout).matrix
    y_holdout = holdout[spec.label].cast(pl.Int32).to_numpy()

    dtrain = xgb.DMatrix(x_train, label=y_train, feature_names=prep.feature_names_, nthread=-1)
    params = {**spec.params, "seed": spec.seed, "nthread": 0}
    callbacks = [] if progress is None else [_ProgressCallback(progress, spec.num_rounds)]
    booster = xgb.train(params, dtrain, num_boost_round=spec.num_rounds, callbacks=callbacks)

    scores = np.asarray(booster.inplace_predict(x_holdout), dtype=np.float32)
    metrics = binary_metrics(y_holdout, scores)
    contents = PackageContents(
        model_bytes=bytes(booster.save_raw(raw_format="ubj")),
        prep=prep,
        framework_version=xgb.__version__,
        metrics=metrics,
        params={**params, "num_rounds": spec.num_rounds, "holdout_fraction": spec.holdout_fraction},
    )
    return TrainResult(
        contents=contents,
        metrics=metrics,
        train_rows=len(train),
        holdout_rows=len(holdout),
        holdout_events=holdout,
        holdout_scores=scores,
    )


def _check_label(frame: pl.DataFrame, label: str) -> None:
    if label not in frame.columns:
        raise DataError(f"label column {label!r} is missing; columns are {frame.columns}")
    positives = int(frame[label].sum() or 0)
    if positives == 0 or positives == len(frame):
        raise DataError(
            f"label {label!r} is constant over {len(frame)} rows ({positives} positives); "
            "a classifier needs both classes"
        )


class _ProgressCallback(xgb.callback.TrainingCallback):
    """Reports boosting rounds to a progress bar."""

    def __init__(self, report: Callable[[int, int], None], total: int) -> None:
        super().__init__()
        self.report = report
        self.total = total

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self.report(epoch + 1, self.total)
        return False
