"""The JSON fast path: event objects prepared without a polars frame give exactly the matrix
and unseen counts of the frame path, and anything unusual is left to the frame path."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest

from shipyard.core.features import DERIVED_FEATURES, FeaturePrep
from shipyard.core.record_prep import DERIVED_ARRAYS
from shipyard.pipeline import Workspace
from shipyard.serve import Target
from shipyard.serve.codecs import RequestRows, decode_events
from shipyard.train import TrainResult


def _prep() -> FeaturePrep:
    training = pl.DataFrame(
        {
            "amount": [10.0, 20.0, 5.5],
            "avg_amount_30d": [12.0, 8.0, 3.0],
            "txn_count_1h": [1, 2, 0],
            "txn_count_24h": [3, 4, 1],
            "is_foreign": [True, False, None],
            "channel": ["web", "pos", "app"],
            "country": ["IT", "DE", None],
        }
    )
    prep = FeaturePrep(
        numeric=["txn_count_1h", "amount"],
        boolean=["is_foreign"],
        categorical=["country", "channel"],
        derived=list(DERIVED_FEATURES),
    )
    return prep.fit(training)


def _frame_path(prep: FeaturePrep, records: list[dict[str, Any]]) -> tuple[np.ndarray, dict]:  # type: ignore[type-arg]
    frame = decode_events(orjson.dumps(records), "application/json", prep.input_types)
    prepared = prep.transform(frame)
    return prepared.matrix, prepared.unseen_counts


def _assert_same(prep: FeaturePrep, records: list[dict[str, Any]]) -> None:
    fast = prep.transform_records(records)
    assert fast is not None
    matrix, unseen = _frame_path(prep, records)
    assert fast.matrix.dtype == matrix.dtype == np.float32
    assert fast.matrix.shape == matrix.shape == (len(records), len(prep.feature_names_))
    # Bit for bit: NaN where the frame path has NaN, the same float32 everywhere else.
    np.testing.assert_array_equal(fast.matrix.view(np.uint32), matrix.view(np.uint32))
    assert fast.unseen_counts == unseen


def test_every_derived_feature_has_an_array_twin() -> None:
    assert set(DERIVED_ARRAYS) == set(DERIVED_FEATURES)


def test_edge_values_match_the_frame_path() -> None:
    prep = _prep()
    base = {
        "amount": 10.5,
        "avg_amount_30d": 4.0,
        "txn_count_1h": 1,
        "txn_count_24h": 2,
        "is_foreign": True,
        "channel": "web",
        "country": "IT",
    }
    records = [
        base,
        # unseen categories, null category, extra fields, keys in another order
        {**dict(reversed(base.items())), "country": "XX", "channel": None, "extra": [1, {}]},
        {**base, "channel": "phone", "country": "xx"},
        # nulls of every kind; a field some events leave out
        {**base, "amount": None, "is_foreign": None, "txn_count_1h": None},
        {k: v for k, v in base.items() if k != "avg_amount_30d"},
        # x / 0, a negative amount (clipped before log), -0.0, beyond float32, huge ints
        {**base, "avg_amount_30d": -1.0, "txn_count_24h": -1, "txn_count_1h": -1},
        {**base, "amount": -250.0, "avg_amount_30d": -1.0},
        {**base, "amount": -0.0, "avg_amount_30d": 0},
        {**base, "amount": 1e308, "avg_amount_30d": 1e-300, "txn_count_1h": 2**53 + 1},
        {**base, "amount": 3, "txn_count_24h": 2**63 - 1, "txn_count_1h": -(2**63)},
        {**base, "amount": 1e-320, "avg_amount_30d": 123456789.123456789},
    ]
    _assert_same(prep, records)
    for record in records:  # and one event at a time (one-row requests)
        if "avg_amount_30d" in record:
            _assert_same(prep, [record])
        else:  # missing from every event of its request: the frame path refuses it
            assert prep.transform_records([record]) is None
    fast = prep.transform_records(records)
    assert fast is not None and fast.unseen_counts == {"country": 2, "channel": 1}


def test_a_field_that_is_null_in_every_event_matches_the_frame_path() -> None:
    prep = _prep()
    records = [
        {"amount": 1.0, "avg_amount_30d": None, "txn_count_1h": None, "txn_count_24h": 1,
         "is_foreign": None, "channel": None, "country": "IT"},
        {"amount": 2, "avg_amount_30d": None, "txn_count_1h": None, "txn_count_24h": 1.5,
         "is_foreign": None, "channel": None, "country": "DE"},
    ]  # fmt: skip
    _assert_same(prep, records)


def test_real_events_match_the_frame_path(trained: TrainResult) -> None:
    prep = trained.contents.prep
    records = trained.holdout_events.drop("is_fraud").head(300).to_dicts()
    _assert_same(prep, records)
    for record in records[:20]:
        _assert_same(prep, [record])
    rng = np.random.default_rng(3)
    categorical = prep.categorical[0]
    for record in records[:50]:
        if rng.random() < 0.3:
            record[categorical] = "never-seen"
        if rng.random() < 0.3:
            record["amount"] = None
    _assert_same(prep, records[:50])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", "12.5"),  # a string number: the frame path names the field
        ("amount", True),
        ("amount", {"value": 1}),
        ("amount", [1.0]),
        ("amount", 2**63),  # beyond int64
        ("amount", float("inf")),
        ("amount", float("nan")),
        ("is_foreign", 1),
        ("channel", 3),
    ],
)
def test_anything_unusual_is_left_to_the_frame_path(field: str, value: Any) -> None:
    prep = _prep()
    good = {"amount": 1.0, "avg_amount_30d": 2.0, "txn_count_1h": 1, "txn_count_24h": 2,
            "is_foreign": False, "channel": "web", "country": "IT"}  # fmt: skip
    assert prep.transform_records([good]) is not None
    assert prep.transform_records([good, {**good, field: value}]) is None


def test_a_field_no_event_sends_is_left_to_the_frame_path() -> None:
    prep = _prep()
    event = {"amount": 1.0, "txn_count_1h": 1, "txn_count_24h": 2, "is_foreign": False,
             "channel": "web", "country": "IT"}  # fmt: skip
    assert prep.transform_records([event, event]) is None
    assert prep.transform_records([]) is None


@pytest.mark.parametrize(
    ("body", "content_type", "count"),
    [
        (b'{"a": 1}', "application/json", 1),
        (b'[{"a": 1}, {"a": 2}]', "application/json; charset=utf-8", 2),
        (b'{"dataframe_records": [{"a": 1}]}', None, 1),
        (b'{"instances": [{"a": 1}, {"a": 2}]}', "application/json", 2),
        (b'{"inputs": [{"a": 1}]}', "application/json", 1),
        (b'{"inputs": {"a": [1]}}', "application/json", None),
        (b'{"instances": [[1, 2]]}', "application/json", None),
        (b'{"dataframe_split": {"data": [[1]]}}', "application/json", None),
        (b'{"instances": [], "inputs": []}', "application/json", None),
        (b"[]", "application/json", None),
        (b"[1, 2]", "application/json", None),
        (b"{nope", "application/json", None),
        (b'{"a": 1}', "text/csv", None),
        (b'{"a": 1}\n', "application/jsonlines", None),
    ],
)
def test_request_rows_offer_records_only_for_json_event_objects(
    body: bytes, content_type: str | None, count: int | None
) -> None:
    records = RequestRows(body, content_type).records()
    assert (None if records is None else len(records)) == count


def test_the_runtime_scores_json_events_as_the_frame_path_does(
    deployed: Workspace, trained: TrainResult
) -> None:
    runtime = deployed.endpoints.runtime("fraud")
    events = trained.holdout_events.drop("is_fraud").head(8)
    records = events.to_dicts()
    records[2][trained.contents.prep.categorical[0]] = "never-seen"
    body = orjson.dumps(records)
    fast = runtime.score(RequestRows(body, "application/json"), Target())
    assert RequestRows(body, "application/json").records() is not None
    slow = runtime.score(lambda types: decode_events(body, "application/json", types), Target())
    np.testing.assert_array_equal(fast.scores, slow.scores)
    np.testing.assert_allclose(fast.scores[3:], trained.holdout_scores[3:8], atol=1e-6)
    assert fast.unseen_categories == slow.unseen_categories == 1


def test_the_dense_and_general_paths_agree(trained: TrainResult) -> None:
    prep = trained.contents.prep
    records = trained.holdout_events.drop("is_fraud").head(64).to_dicts()
    assert prep.transform_records(records[:1]) is not None  # builds the plan
    plan = prep._record_prep_
    assert plan is not None
    dense, general = plan._dense(records), plan._general(records)
    assert dense is not None and general is not None
    np.testing.assert_array_equal(dense[0].view(np.uint32), general[0].view(np.uint32))
    assert dense[1] == general[1]
