"""predict_positive's direct call into XGBoost's C API scores exactly like inplace_predict."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from shipyard.core.artifacts import predict_positive


def _booster(objective: str, classes: int = 2) -> Any:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = rng.integers(0, classes, size=300)
    params: dict[str, Any] = {"objective": objective, "max_depth": 3, "nthread": 1}
    if classes > 2:
        params["num_class"] = classes
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=8)


def _matrices() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    wide = rng.normal(size=(50, 12)).astype(np.float32)
    wide[rng.random(wide.shape) < 0.2] = np.nan
    wide[0, 1] = np.inf
    return [
        np.ascontiguousarray(wide[:1, :6]),  # one row
        np.ascontiguousarray(wide[:, :6]),  # NaN (missing) and inf
        wide[:, ::2],  # strided: through the wrapper
        np.asfortranarray(wide[:, :6]),
        wide[:, :6].astype(np.float64),
        np.zeros((0, 6), dtype=np.float32),
    ]


@pytest.mark.parametrize(("objective", "classes"), [("binary:logistic", 2), ("multi:softprob", 3)])
def test_xgboost_scores_equal_inplace_predict(objective: str, classes: int) -> None:
    booster = _booster(objective, classes)
    for matrix in _matrices():
        expected = booster.inplace_predict(matrix)
        scores = predict_positive("xgboost", booster, matrix)
        assert scores.dtype == np.float32
        assert scores.shape == expected.shape
        np.testing.assert_array_equal(scores, expected)


def test_a_prepared_matrix_skips_the_python_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    booster = _booster("binary:logistic")
    matrix = _matrices()[1]
    expected = booster.inplace_predict(matrix)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("went through inplace_predict")

    monkeypatch.setattr(booster, "inplace_predict", refuse)
    np.testing.assert_array_equal(predict_positive("xgboost", booster, matrix), expected)


def test_scores_are_a_copy_that_the_next_call_leaves_alone() -> None:
    booster = _booster("binary:logistic")
    first, second = _matrices()[1], np.ascontiguousarray(_matrices()[1][::-1])
    scores = predict_positive("xgboost", booster, first)
    kept = scores.copy()
    predict_positive("xgboost", booster, second)
    np.testing.assert_array_equal(scores, kept)


def test_a_matrix_of_the_wrong_width_is_refused_as_by_xgboost() -> None:
    booster = _booster("binary:logistic")
    with pytest.raises(ValueError, match="Feature shape mismatch, expected: 6, got 5"):
        predict_positive("xgboost", booster, np.zeros((3, 5), dtype=np.float32))
