"""The same job spec on Spark: distributed XGBoost, packaged like a local model."""

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
from shipyard.train import COMPLETED, TrainSpec, fit, load_spec, make_trainer
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
    spec = TrainSpec(num_rounds=60, seed=3, threads=2, hyperparameters={"max_depth": 4})
    local = fit(fraud_frame, spec)
    distributed = fit(fraud_frame, dataclasses.replace(spec, engine="spark", workers=2))

    # AUC-ROC: the holdout has ~40 frauds, too few for AUC-PR to be stable within 0.01.
    assert abs(distributed.metrics["auc_roc"] - local.metrics["auc_roc"]) <= 0.01
    assert distributed.metrics["auc_pr"] > 10 * distributed.metrics["base_rate"]
    # The package holds a plain UBJ booster of all 60 rounds that serving loads as usual.
    assert distributed.contents.framework == "xgboost"
    assert distributed.contents.model_bytes[:1] == b"{"  # UBJ object marker
    booster = load_native("xgboost", distributed.contents.model_bytes)
    assert booster.num_boosted_rounds() == 60
    holdout = distributed.contents.prep.transform(distributed.holdout_events).matrix
    np.testing.assert_allclose(
        predict_positive("xgboost", booster, holdout), distributed.holdout_scores, rtol=1e-6
    )
    # Trained on Spark, not a copy of the local model.
    assert not np.allclose(distributed.holdout_scores, local.holdout_scores)
    # A barrier stage needs every task at once: more workers than slots is refused up front.
    with pytest.raises(ConfigError, match="3 tasks, but Spark runs 2 at once"):
        fit(fraud_frame, dataclasses.replace(spec, engine="spark", workers=3))


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
