"""Fit a model in memory, without a job record: the demo, tests and tuning trials use this.

A job (:mod:`shipyard.train.runner`) trains the same way, adding checkpoints, a record and
registration; both end with the same package contents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from shipyard.core.package import PackageContents
from shipyard.train.data import Prepared, prepare, time_split
from shipyard.train.frameworks import Trainer, make_trainer
from shipyard.train.metrics import binary_metrics
from shipyard.train.spec import TrainSpec, check_spec, spec_to_dict

Progress = Callable[[int, int], None]
"""Called with (rounds done, rounds in total) after each round."""


@dataclass(frozen=True)
class TrainResult:
    contents: PackageContents
    metrics: dict[str, float]
    train_rows: int
    holdout_rows: int
    holdout_events: pl.DataFrame
    holdout_scores: np.ndarray


def fit(frame: pl.DataFrame, spec: TrainSpec, progress: Progress | None = None) -> TrainResult:
    """Split ``frame`` by time, fit the spec's framework, score the holdout, build the package."""
    spec = check_spec(spec.with_threads())
    trainer = make_trainer(spec)
    trainer.check()
    prepared, holdout_events = _prepare(frame, spec)
    trainer.start(prepared.train, None)

    def on_round(done: int) -> bool:
        if progress is not None:
            progress(done, spec.num_rounds)
        return False

    trainer.train(spec.num_rounds, on_round)
    scores, metrics = evaluate(trainer, prepared, spec)
    return TrainResult(
        contents=package_contents(spec, trainer, prepared, metrics),
        metrics=metrics,
        train_rows=prepared.train_rows,
        holdout_rows=prepared.holdout_rows,
        holdout_events=holdout_events,
        holdout_scores=scores,
    )


def _prepare(frame: pl.DataFrame, spec: TrainSpec) -> tuple[Prepared, pl.DataFrame]:
    """The prepared splits (on Spark for its engine) and the holdout's raw events."""
    if spec.engine == "spark":
        from shipyard.train.spark import prepare_frame_on_spark

        # The frame is in memory already, so the local split gives the holdout's events;
        # Spark splits the same way (tests/train/test_spark_training.py).
        return prepare_frame_on_spark(frame, spec), time_split(frame, spec)[1]
    prepared = prepare(frame, spec)
    return prepared, prepared.holdout_events


def train_xgboost(
    frame: pl.DataFrame, spec: TrainSpec | None = None, progress: Progress | None = None
) -> TrainResult:
    """:func:`fit` with XGBoost (the fraud scenario's default)."""
    return fit(frame, dataclasses.replace(spec or TrainSpec(), framework="xgboost"), progress)


def evaluate(
    trainer: Trainer, prepared: Prepared, spec: TrainSpec
) -> tuple[np.ndarray, dict[str, float]]:
    """Holdout scores and their metrics."""
    labels, scores = prepared.score_holdout(trainer)
    return scores, binary_metrics(labels, scores, spec.precision_at_k)


def package_contents(
    spec: TrainSpec,
    trainer: Trainer,
    prepared: Prepared,
    metrics: dict[str, float],
    *,
    job_id: str | None = None,
) -> PackageContents:
    """The package of a fitted trainer: its artifact, the prep, metrics and how it was built."""
    params: dict[str, Any] = {
        **trainer.params(),
        "seed": spec.seed,
        "threads": spec.threads,
        "num_rounds": spec.num_rounds,
        "holdout_fraction": spec.holdout_fraction,
        "spec": spec_to_dict(spec),
    }
    if job_id is not None:
        params["training_job"] = job_id
    return PackageContents(
        model_bytes=trainer.artifact(),
        prep=prepared.prep,
        framework_version=trainer.framework_version,
        metrics=metrics,
        params=params,
        framework=spec.framework,
    )
