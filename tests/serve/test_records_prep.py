"""The JSON fast path: event objects prepared without a polars frame give exactly the matrix
and unseen counts of the frame path, and anything unusual is left to the frame path."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.core.features import DERIVED_FEATURES, FeaturePrep, PreparedFeatures
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
    _assert_matches_frame_path(prep, records, fast)


def _assert_typed_same(prep: FeaturePrep, records: list[dict[str, Any]]) -> None:
    """The typed JSON decoder takes the records' body, and prepares what the frame path does."""
    fast = prep.transform_json(orjson.dumps(records))
    assert fast is not None
    _assert_matches_frame_path(prep, records, fast)


def _assert_matches_frame_path(
    prep: FeaturePrep, records: list[dict[str, Any]], fast: PreparedFeatures
) -> None:
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
    # The typed decoder takes events that send every field, with no value beyond 2**63 (a
    # float there could be an integer beyond int64, and the generic path decides those).
    typed = [
        r for r in records
        if "avg_amount_30d" in r and r["txn_count_24h"] != 2**63 - 1 and r["amount"] != 1e308
    ]  # fmt: skip
    assert len(typed) == len(records) - 3
    _assert_typed_same(prep, typed)
    for record in typed:
        _assert_typed_same(prep, [record])


def test_a_field_that_is_null_in_every_event_matches_the_frame_path() -> None:
    prep = _prep()
    records = [
        {"amount": 1.0, "avg_amount_30d": None, "txn_count_1h": None, "txn_count_24h": 1,
         "is_foreign": None, "channel": None, "country": "IT"},
        {"amount": 2, "avg_amount_30d": None, "txn_count_1h": None, "txn_count_24h": 1.5,
         "is_foreign": None, "channel": None, "country": "DE"},
    ]  # fmt: skip
    _assert_same(prep, records)
    _assert_typed_same(prep, records)


def test_real_events_match_the_frame_path(trained: TrainResult) -> None:
    prep = trained.contents.prep
    records = trained.holdout_events.drop("is_fraud").head(300).to_dicts()
    _assert_same(prep, records)
    _assert_typed_same(prep, records)
    for record in records[:20]:
        _assert_same(prep, [record])
        _assert_typed_same(prep, [record])
    rng = np.random.default_rng(3)
    categorical = prep.categorical[0]
    for record in records[:50]:
        if rng.random() < 0.3:
            record[categorical] = "never-seen"
        if rng.random() < 0.3:
            record["amount"] = None
    _assert_same(prep, records[:50])
    _assert_typed_same(prep, records[:50])


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


_GOOD = (
    b'{"amount": 1.5, "avg_amount_30d": 2, "txn_count_1h": 1, "txn_count_24h": 2,'
    b' "is_foreign": false, "channel": "web", "country": "IT", "note": %s}'
)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[" + _GOOD % b'"x"' + b"]", "accepted: the control"),
        (_GOOD % b'"x"', "a single object: it could be an MLflow envelope"),
        (b'{"instances": [' + _GOOD % b"1" + b"]}", "an MLflow envelope"),
        (b"[]", "no events"),
        (b"[" + _GOOD.replace(b'"amount": 1.5, ', b"") % b"1" + b"]", "a missing field"),
        (b"[" + _GOOD.replace(b"1.5", b'"1.5"') % b"1" + b"]", "a string number"),
        (b"[" + _GOOD.replace(b"1.5", b"true") % b"1" + b"]", "a boolean for a float"),
        (b"[" + _GOOD.replace(b"false", b"0") % b"1" + b"]", "a number for a boolean"),
        (b"[" + _GOOD.replace(b'"web"', b"3") % b"1" + b"]", "a number for a string"),
        (b"[" + _GOOD.replace(b"1.5", b"9223372036854775808") % b"1" + b"]", "beyond int64"),
        (b"[" + _GOOD.replace(b"1.5", b"1e400") % b"1" + b"]", "beyond float64"),
        (b"[" + _GOOD % b'"\xff\xfe"' + b"]", "invalid UTF-8 in a field no model reads"),
        (b"[" + _GOOD % (b"[" * 5000 + b"]" * 5000) + b"]", "nested too deep"),
        (b"[" + _GOOD % b"1" + b"] x", "trailing bytes"),
        (b"[" + _GOOD % b"NaN" + b"]", "not JSON"),
    ],
)
def test_the_typed_decoder_takes_only_arrays_of_complete_well_typed_events(
    body: bytes, why: str
) -> None:
    body = body.replace(b"\\xff\\xfe", b"\xff\xfe")
    prep = _prep()
    typed = prep.transform_json(body)
    assert (typed is not None) == why.startswith("accepted"), why


_KNOWN = {"channel": ["web", "pos", "app", "phone"], "country": ["IT", "DE", "XX", ""]}
_TYPED = {
    "float": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.none(),
    ),
    "bool": st.one_of(st.booleans(), st.none()),
}
# Values of the wrong kind, which the typed decoder must decline.
_UNTYPED = st.one_of(
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
)
_BEYOND_INT64 = st.one_of(  # about int64's edges and beyond, for float fields
    st.integers(min_value=2**63 - 2**10, max_value=2**66),
    st.integers(min_value=-(2**66), max_value=-(2**63) + 2**10),
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """JSON arrays of events: well typed, or with one kind of fault here and there (a field
    left out, a value of the wrong kind, an integer about int64's edges, a byte changed)."""
    types = _prep().input_types
    fault = draw(st.sampled_from(["none", "none", "left out", "untyped", "int64", "byte"]))
    events = []
    for _ in range(draw(st.integers(1, 6))):
        event: dict[str, Any] = {}
        for name, kind in types.items():
            here = draw(st.integers(0, 5)) == 0
            if here and fault == "left out":
                continue
            if here and fault == "untyped":
                event[name] = draw(_UNTYPED)
            elif here and fault == "int64" and kind == "float":
                event[name] = draw(_BEYOND_INT64)
            elif kind == "string":
                event[name] = draw(st.one_of(st.sampled_from(_KNOWN[name]), st.none(), st.text()))
            else:
                event[name] = draw(_TYPED[kind])
        if draw(st.booleans()):
            event["extra"] = draw(st.one_of(st.text(), st.lists(st.integers()), st.none()))
        events.append(event)
    body = json.dumps(events, ensure_ascii=draw(st.booleans())).encode()
    if fault == "byte":
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :]
    return body


@settings(max_examples=400, deadline=None)
@given(body=_bodies())
def test_whatever_the_typed_decoder_takes_the_generic_path_takes_alike(body: bytes) -> None:
    prep = _prep()
    typed = prep.transform_json(body)
    try:
        records = orjson.loads(body)
    except orjson.JSONDecodeError:
        assert typed is None
        return
    generic = prep.transform_records(records)
    if typed is None:
        assert not _typed_would_take(prep.input_types, records)
        return
    assert generic is not None
    np.testing.assert_array_equal(typed.matrix.view(np.uint32), generic.matrix.view(np.uint32))
    assert typed.unseen_counts == generic.unseen_counts


def _typed_would_take(types: dict[str, str], records: Any) -> bool:
    """An array of events that each send every field, of its kind or null, below 2**63."""
    allowed = {"float": (int, float), "bool": (bool,), "string": (str,)}

    def fits(value: Any, kind: str) -> bool:
        if value is None:
            return True
        if isinstance(value, bool) and kind != "bool":
            return False
        if not isinstance(value, allowed[kind]):
            return False
        return kind == "string" or abs(float(value)) < 2**63  # as a float64

    return (
        isinstance(records, list)
        and bool(records)
        and all(isinstance(r, dict) for r in records)
        and all(name in r and fits(r[name], kind) for r in records for name, kind in types.items())
    )


def test_the_typed_decoder_takes_what_the_generic_path_takes_whole() -> None:
    """Complete, well-typed events within int64 are not left to the slower path."""
    prep = _prep()
    events = [
        {"amount": v, "avg_amount_30d": -v, "txn_count_1h": 3, "txn_count_24h": None,
         "is_foreign": None, "channel": "nope", "country": None, "extra": {"a": [1]}}
        for v in (0, -0.0, 1e-320, 9.2e18, 2**62, -(2**62), 0.1, 123456789.123456789)
    ]  # fmt: skip
    _assert_typed_same(prep, events)


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
    assert trained.contents.prep.transform_json(body) is not None  # the typed decoder's
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
