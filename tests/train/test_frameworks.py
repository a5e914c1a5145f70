"""Every trainer follows one contract: it learns, and it resumes from a checkpoint exactly."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from shipyard.core.errors import ConfigError
from shipyard.core.package import PackageContents, load_package, write_package
from shipyard.storage import ObjectStore
from shipyard.train import TrainSpec, binary_metrics, make_trainer, prepare
from shipyard.train.data import PreparedData
from shipyard.train.frameworks import Trainer

FRAMEWORKS = {
    "xgboost": {"max_depth": 4, "subsample": 0.7, "colsample_bytree": 0.6},
    "lightgbm": {"num_leaves": 15, "bagging_fraction": 0.7, "feature_fraction": 0.6},
    "sklearn": {"max_leaf_nodes": 15, "max_features": 0.6},
}


def _spec(framework: str, **changes: object) -> TrainSpec:
    values: dict[str, object] = {
        "framework": framework,
        "hyperparameters": FRAMEWORKS.get(framework, {}),
        "num_rounds": 20,
        "seed": 11,
        "threads": 2,
    }
    values.update(changes)
    return TrainSpec(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def prepared(fraud_frame: pl.DataFrame) -> PreparedData:
    return prepare(fraud_frame, TrainSpec())


def _trained(spec: TrainSpec, prepared: PreparedData, segments: list[int]) -> Trainer:
    trainer = make_trainer(spec)
    trainer.check()
    trainer.start(prepared.train, None)
    for rounds in segments:
        trainer.train(rounds, lambda done: False)
    return trainer


def _resumed(trainer: Trainer, spec: TrainSpec, prepared: PreparedData) -> Trainer:
    """A new trainer (as in a new process) started from ``trainer``'s checkpoint bytes."""
    again = make_trainer(spec)
    again.start(prepared.train, trainer.checkpoint())
    assert again.rounds_done == trainer.rounds_done
    return again


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_each_framework_learns_the_fraud_rule(framework: str, prepared: PreparedData) -> None:
    trainer = _trained(_spec(framework), prepared, [20])
    assert trainer.rounds_done == 20
    metrics = binary_metrics(prepared.holdout_y, trainer.predict(prepared.holdout_x))
    assert metrics["auc_roc"] > 0.8
    assert metrics["auc_pr"] > 5 * metrics["base_rate"]


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_resuming_at_a_boundary_gives_the_identical_model(
    framework: str, prepared: PreparedData
) -> None:
    spec = _spec(framework)
    unbroken = _trained(spec, prepared, [5, 5, 5, 5])
    broken = _trained(spec, prepared, [5, 5])
    resumed = _resumed(broken, spec, prepared)
    for _ in range(2):
        resumed.train(5, lambda done: False)
    expected = unbroken.predict(prepared.holdout_x)
    assert np.array_equal(resumed.predict(prepared.holdout_x), expected)
    if framework != "sklearn":  # skops names the arrays in its zip after object ids
        assert resumed.artifact() == unbroken.artifact()
    # The samples really are random: another seed grows another model.
    other = _trained(_spec(framework, seed=12), prepared, [5, 5, 5, 5])
    assert not np.array_equal(other.predict(prepared.holdout_x), expected)


def test_xgboost_resumes_exactly_at_any_round(prepared: PreparedData) -> None:
    spec = _spec("xgboost")
    unbroken = _trained(spec, prepared, [20])
    resumed = _resumed(_trained(spec, prepared, [7]), spec, prepared)
    resumed.train(13, lambda done: False)
    assert resumed.artifact() == unbroken.artifact()


def test_xgboost_trees_use_only_the_columns_drawn_for_their_round(prepared: PreparedData) -> None:
    spec = _spec("xgboost")
    trainer = _trained(spec, prepared, [6])
    names = prepared.train.feature_names
    drawn_sets = []
    for round_index, tree in enumerate(trainer._booster.get_dump()):  # type: ignore[attr-defined]
        used = set(re.findall(r"\[([a-z_0-9]+)<", tree))
        rng = np.random.default_rng([spec.seed, round_index])
        rng.random(prepared.train_rows, dtype=np.float32)  # the round's row draw comes first
        drawn = {names[i] for i in rng.choice(len(names), 12, replace=False)}
        assert used and used <= drawn, (round_index, used - drawn)
        drawn_sets.append(frozenset(drawn))
    assert len(set(drawn_sets)) > 1


def test_a_stop_request_ends_training_after_the_current_round(prepared: PreparedData) -> None:
    trainer = make_trainer(_spec("xgboost"))
    trainer.start(prepared.train, None)
    trainer.train(20, lambda done: done == 4)
    assert trainer.rounds_done == 4


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_the_package_scores_like_the_trainer(
    framework: str, prepared: PreparedData, tmp_path: Path
) -> None:
    trainer = _trained(_spec(framework), prepared, [10])
    store = ObjectStore(tmp_path.as_uri())
    contents = PackageContents(
        trainer.artifact(), prepared.prep, trainer.framework_version, framework=framework
    )
    stored = write_package(store, f"models/{framework}/1", contents)
    model = load_package(store, stored.manifest_uri, stored.manifest_sha256)
    scores, _ = model.score(prepared.holdout_events)
    np.testing.assert_allclose(scores, trainer.predict(prepared.holdout_x), rtol=0, atol=1e-7)


def test_logistic_regression_trains_in_one_piece(prepared: PreparedData) -> None:
    spec = _spec("sklearn", hyperparameters={"estimator": "LogisticRegression", "C": 0.5})
    trainer = _trained(spec, prepared, [20])
    assert not trainer.can_checkpoint
    metrics = binary_metrics(prepared.holdout_y, trainer.predict(prepared.holdout_x))
    assert metrics["auc_roc"] > 0.7
    with pytest.raises(ConfigError, match="LogisticRegression trains in one piece"):
        make_trainer(
            _spec(
                "sklearn",
                hyperparameters={"estimator": "LogisticRegression"},
                checkpoint_interval=5,
            )
        ).check()


@pytest.mark.parametrize(
    ("framework", "hyperparameters", "message"),
    [
        ("xgboost", {"max_dept": 3}, "XGBoost does not know max_dept"),
        ("xgboost", {"max_depth": "deep"}, "XGBoost refuses them: Invalid Parameter format"),
        ("xgboost", {"seed": 1}, "hyperparameter 'seed' is set by the spec's 'seed' field"),
        ("xgboost", {"nthread": 8}, "set by the spec's 'threads' field"),
        ("xgboost", {"objective": "reg:squarederror"}, "'objective' must be 'binary:logistic'"),
        ("xgboost", {"subsample": 0}, "'subsample' must be in (0, 1]"),
        ("xgboost", {"colsample_bylevel": 0.5}, "draws from XGBoost's internal random state"),
        ("xgboost", {"booster": "dart"}, "draws from XGBoost's internal random state"),
        ("lightgbm", {"num_leaves": "x"}, "LightGBM refuses them: Parameter num_leaves"),
        ("lightgbm", {"max_dept": 3}, "LightGBM does not know max_dept"),
        ("lightgbm", {"random_state": 1}, "hyperparameter 'random_state' is set by the spec"),
        ("lightgbm", {"n_estimators": 9}, "set by the spec's 'num_rounds' field"),
        ("lightgbm", {"objective": "regression"}, "'objective' must be 'binary'"),
        ("lightgbm", {"boosting": "dart"}, "cannot resume exactly from a checkpoint"),
        ("sklearn", {"estimator": "SVC"}, "'SVC' is not one of"),
        ("sklearn", {"max_leaf_nodes": "many"}, "scikit-learn refuses them"),
        ("sklearn", {"max_dept": 3}, "scikit-learn refuses them"),
        ("sklearn", {"max_iter": 9}, "set by the spec's 'num_rounds' field"),
    ],
)
def test_bad_hyperparameters_are_named(
    framework: str,
    hyperparameters: dict[str, object],
    message: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    trainer = make_trainer(_spec(framework, hyperparameters=hyperparameters, checkpoint_interval=5))
    with pytest.raises(ConfigError) as caught:
        trainer.check()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert capfd.readouterr().err == ""  # LightGBM's native "[Fatal]" line is kept off stderr


def test_hyperparameters_override_defaults_under_any_alias() -> None:
    xgb_params = make_trainer(_spec("xgboost", hyperparameters={"learning_rate": 0.3})).params()
    assert xgb_params["learning_rate"] == 0.3 and "eta" not in xgb_params
    lgb_params = make_trainer(_spec("lightgbm", hyperparameters={"eta": 0.3})).params()
    assert lgb_params["eta"] == 0.3 and "learning_rate" not in lgb_params
