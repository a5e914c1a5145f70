"""The same job spec on Spark: data read and prepared on the executors, xgboost.spark, and a
model packaged like a local one. One SparkSession (local[2]) serves the whole module."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from shipyard.core.artifacts import load_native, predict_positive
from shipyard.core.errors import ConfigError
from shipyard.core.package import load_package
from shipyard.pipeline import Workspace
from shipyard.pipeline.training import run_training
from shipyard.train import COMPLETED, TrainSpec, fit, load_spec, make_trainer, prepare
from shipyard.train.spark import prepare_frame_on_spark
from shipyard.train.spark_data import LABEL
from tests.train.conftest import job_spec


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from shipyard.train.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.mark.slow
def test_spark_model_scores_the_holdout_like_the_single_node_one(
    spark: Any, fraud_frame: pl.DataFrame
) -> None:
    # No row or column sampling: the two engines then run the same algorithm, and what is
    # left to differ is the distributed histogram sketch and the row shares. A larger holdout
    # than the default puts ~100 frauds in it, enough for AUC-PR to be compared to 0.01.
    hyperparameters = {"max_depth": 4, "subsample": 1.0, "colsample_bytree": 1.0}
    spec = TrainSpec(
        num_rounds=40, seed=3, threads=2, holdout_fraction=0.5, hyperparameters=hyperparameters
    )
    local = fit(fraud_frame, spec)
    distributed = fit(fraud_frame, dataclasses.replace(spec, engine="spark", workers=2))

    assert distributed.holdout_rows == local.holdout_rows
    assert distributed.metrics["base_rate"] == local.metrics["base_rate"]
    assert abs(distributed.metrics["auc_roc"] - local.metrics["auc_roc"]) <= 0.01
    assert abs(distributed.metrics["auc_pr"] - local.metrics["auc_pr"]) <= 0.01
    assert distributed.metrics["auc_pr"] > 10 * distributed.metrics["base_rate"]
    # The package holds a plain UBJ booster of all the rounds, which serving loads as usual
    # and which scores the holdout as Spark's executors did.
    assert distributed.contents.framework == "xgboost"
    assert distributed.contents.model_bytes[:1] == b"{"  # UBJ object marker
    booster = load_native("xgboost", distributed.contents.model_bytes)
    assert booster.num_boosted_rounds() == 40
    holdout = distributed.contents.prep.transform(distributed.holdout_events).matrix
    served = predict_positive("xgboost", booster, holdout)
    np.testing.assert_allclose(np.sort(served), np.sort(distributed.holdout_scores), rtol=1e-6)
    # Trained on Spark, not a copy of the local model.
    assert not np.allclose(np.sort(distributed.holdout_scores), np.sort(local.holdout_scores))
    # A barrier stage needs every task at once: more workers than slots is refused up front.
    with pytest.raises(ConfigError, match="3 tasks, but Spark runs 2 at once"):
        fit(fraud_frame, dataclasses.replace(spec, engine="spark", workers=3))


def awkward_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Fraud events with what the prep must treat alike on both engines: nulls, a category
    only the holdout has, a negative amount, a zero denominator, a value beyond float32,
    and event times tied by the hundred (the split then follows input order)."""
    row = pl.int_range(pl.len())
    return frame.with_columns(
        event_time=pl.col("event_time").str.slice(0, 15),  # to the ten minutes: many ties
        amount=pl.when(row % 97 == 0).then(-5.0).when(row % 89 == 0).then(1e100)
        .otherwise(pl.col("amount")),
        avg_amount_30d=pl.when(row % 83 == 0).then(-1.0).otherwise(pl.col("avg_amount_30d")),
        txn_count_24h=pl.when(row % 79 == 0).then(None).otherwise(pl.col("txn_count_24h")),
        is_foreign=pl.when(row % 73 == 0).then(None).otherwise(pl.col("is_foreign")),
        country=pl.when(row == pl.len() - 1).then(pl.lit("XX"))
        .when(row % 71 == 0).then(None).otherwise(pl.col("country")),
    )  # fmt: skip


def in_row_order(matrix: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows (label first) sorted, NaN as -inf: Spark returns a split's rows in its own order."""
    rows = np.column_stack([labels.astype(np.float32), matrix])
    keys = np.nan_to_num(rows, nan=-np.inf)
    return rows[np.lexsort(keys.T[::-1])]


@pytest.mark.slow
def test_spark_prepares_the_same_split_and_feature_matrix_as_polars(
    spark: Any, fraud_frame: pl.DataFrame
) -> None:
    frame = awkward_rows(fraud_frame.head(6000))
    spec = TrainSpec(holdout_fraction=0.3)
    local = prepare(frame, spec)
    on_spark = prepare_frame_on_spark(frame, spec)

    # The package's prep: the same codes, derived features and column order.
    assert on_spark.prep.to_dict() == local.prep.to_dict()
    assert "XX" not in on_spark.prep.categories_["country"]  # a holdout-only value
    assert (on_spark.train_rows, on_spark.holdout_rows) == (local.train_rows, local.holdout_rows)
    names = list(local.prep.feature_names_)
    for rows, x, y in (
        (on_spark.train.frame, local.train.x, local.train.y),
        (on_spark.holdout, local.holdout_x, local.holdout_y),
    ):
        collected = rows.toArrow()
        spark_x = np.column_stack(
            [collected.column(n).to_numpy(zero_copy_only=False) for n in names]
        ).astype(np.float32)
        spark_y = collected.column(LABEL).to_numpy()
        assert np.isnan(x).any() and np.isnan(spark_x).any()
        np.testing.assert_allclose(in_row_order(spark_x, spark_y), in_row_order(x, y), rtol=1e-6)


@pytest.mark.slow
def test_a_spark_model_resumed_from_a_segment_checkpoint_is_the_unbroken_one(
    spark: Any, fraud_frame: pl.DataFrame
) -> None:
    spec = TrainSpec(num_rounds=6, seed=5, threads=2, engine="spark", workers=2)
    prepared = prepare_frame_on_spark(fraud_frame.head(8000), spec)
    unbroken = make_trainer(spec)
    unbroken.start(prepared.train, None)
    unbroken.train(3, lambda done: False)
    checkpoint = unbroken.checkpoint()
    unbroken.train(3, lambda done: False)
    resumed = make_trainer(spec)
    resumed.start(prepared.train, checkpoint)
    assert resumed.rounds_done == 3
    resumed.train(3, lambda done: False)

    assert resumed.rounds_done == unbroken.rounds_done == 6
    # The same segments from the same booster, seeded by their first round: the same model.
    assert resumed.artifact() == unbroken.artifact()


@pytest.mark.slow
def test_a_spark_job_checkpoints_and_registers_a_package_serving_loads(
    spark: Any, workspace: Workspace, fraud_files: Path
) -> None:
    spec = job_spec(fraud_files, num_rounds=10, checkpoint_interval=5, engine="spark", workers=2)
    job = run_training(workspace, spec)

    assert job.status == COMPLETED, job.failure_reason
    assert job.checkpoint is not None and job.checkpoint.round == 10
    version = workspace.registry.get("fraud", job.model["number"])
    assert version.params["spec"]["engine"] == "spark"
    package = load_package(workspace.store, version.artifact_uri, version.sha256)
    scores, _unseen = package.score(fraud_frame_head(fraud_files))
    assert scores.shape == (50,) and np.all((scores > 0) & (scores < 1))


def fraud_frame_head(files: Path) -> pl.DataFrame:
    return pl.read_parquet(files / "events.parquet").head(50)


def test_engine_is_checked_by_the_spec(tmp_path: Any) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("engine: dask\n")
    with pytest.raises(ConfigError, match="unknown engine 'dask'; choose local, spark"):
        load_spec(path)
    path.write_text("engine: spark\nframework: lightgbm\n")
    with pytest.raises(ConfigError, match="Spark trains XGBoost only"):
        load_spec(path)
    path.write_text("engine: spark\nworkers: -1\n")
    with pytest.raises(ConfigError, match="'workers' must be between 0 and 4096"):
        load_spec(path)


def test_a_spark_spec_gets_the_spark_trainer_without_starting_spark() -> None:
    from shipyard.train.spark import SparkXGBoostTrainer

    trainer = make_trainer(TrainSpec(engine="spark"))
    assert isinstance(trainer, SparkXGBoostTrainer)
    assert not trainer.resumes_at_any_round
    trainer.check()  # the same hyperparameter checks as the local XGBoost trainer
