"""XGBoost on Spark, the ``engine: spark`` of a job spec: ``xgboost.spark.SparkXGBClassifier``.

The rows never pass through the driver: Spark reads the job's Parquet files
(:mod:`shipyard.train.spark_input`), checks the label, splits by time and computes the
package's feature preparation as column expressions (:mod:`shipyard.train.spark_data`);
``SparkXGBClassifier`` trains on ``workers`` barrier tasks (Spark's parallelism by default)
that read their share of the rows; the driver gets the booster
back (``get_booster()``) and stores it as UBJ in the same model package a local job writes, so
serving loads it like any other. The holdout is scored on the executors and only its labels
and scores are collected for the metrics.

Checkpoints hold at segment boundaries only. ``SparkXGBClassifier`` runs a whole ``fit`` as one
Spark stage and has no per-round callback on the driver, so a job trains segment by segment
(``checkpoint_interval`` rounds each), each a ``fit`` that continues from the previous segment's
booster (``xgb_model``), seeded by (seed, first round of the segment). Segments split at the
same rounds whether or not the job was interrupted, so a resumed job trains the same segments
from the same boosters; a stop request ends the job at the next segment boundary, not within a
segment (``resumes_at_any_round`` is False). Row and column sampling (``subsample``,
``colsample_bytree``) are XGBoost's own on Spark, drawn inside each segment.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from shipyard.core.artifacts import predict_positive
from shipyard.core.errors import ConfigError
from shipyard.core.spark import local_session
from shipyard.train.data import InputSource
from shipyard.train.frameworks._xgboost import XGBoostTrainer
from shipyard.train.frameworks.base import OnRound, TrainingData, derive_seed
from shipyard.train.spark_data import (
    LABEL,
    SparkPrepared,
    SparkTrainingData,
    pandas_3_tolerated,
    prepare_on_spark,
)
from shipyard.train.spark_input import from_polars, read_input
from shipyard.train.spec import TrainSpec

if TYPE_CHECKING:
    from shipyard.storage import MetadataStore, ObjectStore

_SPARK_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "ERROR",
    # In local mode the driver is also the executor: the memory its tasks share.
    "spark.driver.memory": os.environ.get("SHIPYARD_SPARK_DRIVER_MEMORY", "2g"),
    # Spark's default of 200 shuffle partitions is for clusters; on one machine every sort
    # and join would run 200 tiny tasks.
    "spark.sql.shuffle.partitions": str(2 * (os.cpu_count() or 1)),
}
# Set by the estimator itself (threads from Spark's task slots; the objective is binary:logistic,
# which check() requires) and refused when given.
_SPARK_OWNED = ("nthread", "n_jobs", "objective")


class SparkXGBoostTrainer(XGBoostTrainer):
    """``SparkXGBClassifier`` over ``workers`` Spark tasks; a segment cannot stop half way."""

    resumes_at_any_round = False

    def start(self, data: TrainingData, checkpoint: bytes | None) -> None:
        import xgboost as xgb

        if not isinstance(data, SparkTrainingData):
            raise TypeError("the Spark trainer trains on Spark rows (prepare_on_spark)")
        self._data = data
        self._booster: Any = None
        if checkpoint is not None:
            self._booster = xgb.Booster(model_file=bytearray(checkpoint))
        self.rounds_done = 0 if checkpoint is None else self._booster.num_boosted_rounds()

    def train(self, rounds: int, on_round: OnRound) -> None:
        if rounds <= 0:
            return
        workers = check_workers(spark_session(), self.spec)
        if workers > self._data.rows:
            raise ConfigError(f"field 'workers': {workers} tasks for {self._data.rows} rows")
        estimator = self._estimator(rounds, workers)
        with pandas_3_tolerated():
            model = estimator.fit(self._data.frame)
        self._booster = model.get_booster()
        self._booster.set_param({"nthread": self.threads})
        self.rounds_done = self._booster.num_boosted_rounds()
        on_round(self.rounds_done)

    def _estimator(self, rounds: int, workers: int) -> Any:
        from xgboost.spark import SparkXGBClassifier

        params = {k: v for k, v in self.params().items() if k not in _SPARK_OWNED}
        return SparkXGBClassifier(
            features_col=list(self._data.feature_names),
            label_col=LABEL,
            num_workers=workers,
            n_estimators=rounds,
            random_state=derive_seed(self.spec.seed, self.rounds_done),
            missing=np.nan,
            verbose=False,  # else every task prints each round's training loss
            xgb_model=self._booster,
            **params,
        )

    def checkpoint(self) -> bytes:
        if self._booster is None:
            raise ConfigError("the Spark trainer has no model yet; train at least one round")
        return bytes(self._booster.save_raw(raw_format="ubj"))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict_positive("xgboost", self._booster, x)


def check_workers(spark: Any, spec: TrainSpec) -> int:
    """The tasks that train together: ``spec.workers``, or Spark's parallelism when 0."""
    slots = int(spark.sparkContext.defaultParallelism)
    workers = spec.workers or slots
    if workers > slots:
        # A barrier stage needs all its tasks at once; Spark would retry for minutes.
        raise ConfigError(
            f"field 'workers': {workers} tasks, but Spark runs {slots} at once; "
            f"set workers to at most {slots}"
        )
    return workers


def load_on_spark(
    meta: MetadataStore,
    store: ObjectStore,
    spec: TrainSpec,
    check: Callable[[tuple[InputSource, ...]], None] | None = None,
) -> tuple[SparkPrepared, tuple[InputSource, ...]]:
    """A job's input read and prepared by Spark; ``check`` sees the sources first."""
    spark = spark_session()
    check_workers(spark, spec)  # before any reading: a job that cannot run leaves no trace
    frame, sources = read_input(spark, meta, store, spec)
    if check is not None:
        check(sources)
    return prepare_on_spark(frame, spec), sources


def prepare_frame_on_spark(frame: pl.DataFrame, spec: TrainSpec) -> SparkPrepared:
    """An in-memory frame handed to Spark and prepared there (``fit`` with engine spark)."""
    spark = spark_session()
    check_workers(spark, spec)
    return prepare_on_spark(from_polars(spark, frame), spec)


def spark_session(master: str = "local[*]") -> Any:
    """The active SparkSession, or a new one on ``master`` (UTC, quiet, no UI)."""
    session = local_session(master, "shipyard-train", _SPARK_SETTINGS)
    # xgboost.spark logs every fit's parameters at INFO on the driver.
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    return session
