"""XGBoost trained across Spark tasks: the ``engine: spark`` of a job spec.

Why not ``xgboost.spark.SparkXGBClassifier``: in xgboost 3.2 it imports pandas (its data path
is ``mapInPandas``), and pandas is not a Shipyard dependency, so ``import xgboost.spark``
fails here with ``ModuleNotFoundError: No module named 'pandas'``. This trainer does what that
estimator does underneath: one Spark *barrier* stage whose tasks each hold a share of the
training rows and train one model together through XGBoost's collective (a Rabit tracker on
the driver, allreduce between tasks); task 0 hands back the booster, as UBJ. The package is
then built exactly as a local job's, so serving loads it like any other.

Each ``train`` call (a checkpoint segment of the job) is one stage that continues from the
previous segment's booster, seeded by (seed, first round of the segment). Segments split at
the same rounds whether or not the job was interrupted, so a resumed job trains the same
segments from the same boosters. The rows still pass through the driver (the job's reading,
time split and feature prep are the local ones), so the training work is spread, but the
input must fit in the driver's memory.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from shipyard.core.artifacts import predict_positive
from shipyard.core.errors import ConfigError
from shipyard.train.frameworks._xgboost import XGBoostTrainer
from shipyard.train.frameworks.base import OnRound, TrainingData, derive_seed

_SPARK_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "ERROR",
    # In local mode the driver is also the executor: the memory its tasks share.
    "spark.driver.memory": os.environ.get("SHIPYARD_SPARK_DRIVER_MEMORY", "2g"),
}


class SparkXGBoostTrainer(XGBoostTrainer):
    """XGBoost over ``workers`` Spark tasks; a segment cannot stop half way."""

    resumes_at_any_round = False

    def start(self, data: TrainingData, checkpoint: bytes | None) -> None:
        import xgboost as xgb

        self._data = data
        self._model = checkpoint
        if checkpoint is not None:
            self._booster = xgb.Booster(model_file=bytearray(checkpoint))
        self.rounds_done = 0 if checkpoint is None else self._booster.num_boosted_rounds()

    def train(self, rounds: int, on_round: OnRound) -> None:
        import xgboost as xgb

        if rounds <= 0:
            return
        spark = spark_session()
        slots = spark.sparkContext.defaultParallelism
        workers = self.spec.workers or slots
        if workers > slots:
            # A barrier stage needs all its tasks at once; Spark would retry for minutes.
            raise ConfigError(
                f"field 'workers': {workers} tasks, but Spark runs {slots} at once; "
                f"set workers to at most {slots}"
            )
        if workers > len(self._data.y):
            raise ConfigError(f"field 'workers': {workers} tasks for {len(self._data.y)} rows")
        params = {
            **self.params(),
            "seed": derive_seed(self.spec.seed, self.rounds_done),
            "nthread": max(1, self.threads // workers),
        }
        self._model = _train_on_spark(spark, self._data, params, rounds, self._model, workers)
        self._booster = xgb.Booster(model_file=bytearray(self._model))
        self._booster.set_param({"nthread": self.threads})
        self.rounds_done = self._booster.num_boosted_rounds()
        on_round(self.rounds_done)

    def checkpoint(self) -> bytes:
        if self._model is None:
            raise ConfigError("the Spark trainer has no model yet; train at least one round")
        return self._model

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict_positive("xgboost", self._booster, x)


def spark_session(master: str = "local[*]") -> Any:
    """The active SparkSession, or a new one on ``master`` (UTC, quiet, no UI)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # The tasks import xgboost, so they must run this interpreter, not the PATH's python3;
    # PySpark reads the variable when the context starts.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("shipyard-train")
    for key, value in _SPARK_SETTINGS.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _train_on_spark(
    spark: Any,
    data: TrainingData,
    params: dict[str, Any],
    rounds: int,
    model: bytes | None,
    workers: int,
) -> bytes:
    """``rounds`` more boosting rounds, one barrier task per share of the rows; UBJ bytes."""
    from xgboost.tracker import RabitTracker

    host = spark.conf.get("spark.driver.host", "127.0.0.1")
    tracker = RabitTracker(n_workers=workers, host_ip=host, sortby="task")
    tracker.start()
    waiter = threading.Thread(target=tracker.wait_for, daemon=True)
    waiter.start()
    collective = {"n_workers": workers, **tracker.worker_args()}
    # Rows are dealt round-robin, so every task sees the whole time range and both classes.
    shares = [(data.x[i::workers], data.y[i::workers], data.feature_names) for i in range(workers)]
    rdd = spark.sparkContext.parallelize(shares, numSlices=workers)
    task = _boost_task(params, rounds, model, collective)
    results = rdd.barrier().mapPartitions(task).collect()
    waiter.join(timeout=30)
    if len(results) != 1:
        raise RuntimeError(f"expected the model from task 0, got {len(results)} results")
    return bytes(results[0])


def _boost_task(
    params: dict[str, Any], rounds: int, model: bytes | None, collective: dict[str, Any]
) -> Any:
    """The function each barrier task runs (shipped to executors by Spark's cloudpickle)."""

    def run(partition: Iterator[tuple[np.ndarray, np.ndarray, list[str]]]) -> Iterator[bytes]:
        import xgboost as xgb
        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        shares = list(partition)
        x, y, names = shares[0]
        rank = context.partitionId()
        with xgb.collective.CommunicatorContext(**collective, dmlc_task_id=str(rank)):
            # Built inside the collective: the histogram cuts are agreed across all tasks.
            dtrain = xgb.QuantileDMatrix(
                x, label=y, feature_names=names, max_bin=int(params.get("max_bin", 256))
            )
            start = None if model is None else bytearray(model)
            booster = xgb.train(params, dtrain, rounds, xgb_model=start)
        if rank == 0:
            yield bytes(booster.save_raw(raw_format="ubj"))

    return run
