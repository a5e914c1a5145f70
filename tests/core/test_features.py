from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from shipyard.core.errors import InvalidRequestError, NotFittedError
from shipyard.core.features import FeaturePrep

TRAIN = pl.DataFrame(
    {
        "amount": [10.0, 20.0, 30.0],
        "avg_amount_30d": [5.0, 5.0, 5.0],
        "is_foreign": [True, False, None],
        "channel": ["pos", "ecom", "atm"],
    }
)


def _prep() -> FeaturePrep:
    return FeaturePrep(["amount"], ["is_foreign"], ["channel"], ["amount_to_avg_ratio"]).fit(TRAIN)


def test_transform_orders_encodes_and_derives() -> None:
    prep = _prep()
    assert prep.feature_names_ == ["amount", "is_foreign", "channel", "amount_to_avg_ratio"]
    assert prep.input_types == {
        "amount": "float",
        "is_foreign": "bool",
        "channel": "string",
        "avg_amount_30d": "float",
    }
    matrix = prep.transform(TRAIN).matrix
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(matrix[:, 2], [2.0, 1.0, 0.0])  # atm, ecom, pos
    np.testing.assert_allclose(matrix[:, 3], np.array([10, 20, 30]) / 6.0, rtol=1e-6)
    assert np.isnan(matrix[2, 1])


def test_unseen_categories_become_missing_and_are_counted() -> None:
    frame = TRAIN.with_columns(pl.Series("channel", ["pos", "fax", "fax"]))
    prepared = _prep().transform(frame)
    assert prepared.unseen_counts == {"channel": 2}
    assert np.isnan(prepared.matrix[1:, 2]).all()


def test_round_trip_through_the_package_dict() -> None:
    prep = _prep()
    again = FeaturePrep.from_dict(prep.to_dict())
    np.testing.assert_array_equal(again.transform(TRAIN).matrix, prep.transform(TRAIN).matrix)


def test_integers_from_json_are_accepted_and_strings_refused() -> None:
    prep = _prep()
    ints = TRAIN.with_columns(pl.col("amount").cast(pl.Int64))
    np.testing.assert_array_equal(prep.transform(ints).matrix, prep.transform(TRAIN).matrix)
    with pytest.raises(InvalidRequestError, match="'amount' must be a number, got string"):
        prep.transform(TRAIN.with_columns(pl.Series("amount", ["ten", "1", "2"])))
    with pytest.raises(InvalidRequestError, match="'amount' must be a number, got boolean"):
        prep.transform(TRAIN.with_columns(pl.Series("amount", [True, False, True])))
    with pytest.raises(InvalidRequestError, match="'is_foreign' must be true or false"):
        prep.transform(TRAIN.with_columns(pl.Series("is_foreign", [2, 0, 1])))
    with pytest.raises(InvalidRequestError, match="'channel' must be a string, got numeric"):
        prep.transform(TRAIN.with_columns(pl.Series("channel", [1, 2, 3])))
    with pytest.raises(InvalidRequestError, match="missing field"):
        prep.transform(TRAIN.drop("channel"))


def test_unfitted_prep_says_so() -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        FeaturePrep(["amount"]).transform(TRAIN)


def test_values_beyond_float32_are_missing_not_a_fault() -> None:
    huge = TRAIN.with_columns(pl.Series("amount", [1e100, 20.0, 1e300]))
    matrix = _prep().transform(huge).matrix  # no overflow warning: warnings are errors here
    assert np.isnan(matrix[[0, 2], 0]).all() and np.isnan(matrix[[0, 2], 3]).all()
    assert matrix[1, 0] == 20.0
