from __future__ import annotations

import numpy as np
import orjson
import pytest

from shipyard.core.errors import InvalidRequestError
from shipyard.serve import UnsupportedMediaType, decode_events, encode_scores

SIGNATURE = {"amount": "float", "is_foreign": "bool", "channel": "string"}
EVENT = {"amount": 12.5, "is_foreign": False, "channel": "pos"}


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps(EVENT),
        orjson.dumps([EVENT, EVENT]),
        orjson.dumps({"instances": [EVENT]}),
        orjson.dumps({"dataframe_records": [EVENT]}),
        orjson.dumps({"dataframe_split": {"columns": list(EVENT), "data": [list(EVENT.values())]}}),
    ],
)
def test_json_shapes(body: bytes) -> None:
    frame = decode_events(body, "application/json", SIGNATURE)
    assert frame.row(0, named=True) == EVENT


def test_jsonlines_and_csv() -> None:
    lines = orjson.dumps(EVENT) + b"\n\n" + orjson.dumps(EVENT) + b"\n"
    assert decode_events(lines, "application/jsonlines", SIGNATURE).height == 2
    csv = decode_events(b"12.5,false,pos\n3,true,ecom\n", "text/csv; charset=utf-8", SIGNATURE)
    assert csv.row(0, named=True) == EVENT
    with_header = decode_events(
        b"amount,is_foreign,channel\n12.5,false,pos\n", "text/csv", SIGNATURE
    )
    assert with_header.height == 1


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", "application/json", "body is empty"),
        (b"{nope", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "not an event object"),
        (b"[]", "application/json", "no events"),
        (b"1,2\n", "text/csv", "hold 3 values"),
        (b"x", "application/xml", "not supported"),
        (b'{"a":1}\nnope\n', "application/jsonlines", "line 2"),
    ],
)
def test_bad_bodies_name_the_problem(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        decode_events(body, content_type, SIGNATURE)


def test_encodings() -> None:
    scores = np.array([0.25, 0.5], dtype=np.float32)
    body, kind = encode_scores(scores, None)
    assert kind == "application/json"
    assert orjson.loads(body) == {
        "predictions": [{"fraud_probability": 0.25}, {"fraud_probability": 0.5}]
    }
    assert encode_scores(scores, "text/csv") == (b"0.25\n0.5\n", "text/csv")


ROW = list(EVENT.values())


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": list(EVENT), "data": [ROW]}},
        {"dataframe_split": {"index": [7], "columns": list(EVENT), "data": [ROW]}},
        {"dataframe_split": {"data": [ROW]}},  # no columns: the signature's order
        {
            "dataframe_split": {
                "columns": ["channel", "amount", "is_foreign"],
                "data": [["pos", 12.5, False]],
            }
        },
        {"dataframe_records": [EVENT]},
        {"instances": [EVENT]},
        {"instances": [ROW]},
        {"instances": {k: [v] for k, v in EVENT.items()}},
        {"inputs": [EVENT]},
        {"inputs": [ROW]},
        {"inputs": {k: [v] for k, v in EVENT.items()}},
        {"inputs": {k: [v] for k, v in EVENT.items()}, "params": {"ignored": 1}},
    ],
)
def test_every_mlflow_scoring_shape(payload: dict[str, object]) -> None:
    frame = decode_events(orjson.dumps(payload), "application/json", SIGNATURE)
    assert frame.height == 1
    assert frame.row(0, named=True) == EVENT


def test_fields_the_model_does_not_read_are_dropped() -> None:
    frame = decode_events(
        orjson.dumps([{**EVENT, "event_id": "e1", "note": {"a": 1}}, {**EVENT, "note": 5}]),
        "application/json",
        SIGNATURE,
    )
    assert frame.columns == list(EVENT) and frame.height == 2


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"instances": [], "inputs": []}', "application/json", "exactly one of"),
        (b'{"inputs": [[1, true]]}', "application/json", r"inputs\[0\] holds 2 values"),
        (b'{"inputs": {"amount": [1, 2], "channel": ["a"]}}', "application/json", "one length"),
        (b'{"inputs": [[12.5, false, "pos"], {"amount": 1}]}', "application/json", "mixes"),
        (
            b'{"dataframe_split": {"columns": ["amount"], "data": [[1, 2]]}}',
            "application/json",
            "holds 2 values",
        ),
        (b'{"dataframe_split": [1]}', "application/json", "needs 'data'"),
        # polars would read true as 1 in a column of numbers: refused, naming the field
        (
            b'[{"amount": 1}, {"amount": true}]',
            "application/json",
            "'amount' holds boolean and number",
        ),
        (b'{"amount": NaN}', "application/json", "no NaN or Infinity"),
        (b'{"amount": 1e999}', "application/json", "no NaN or Infinity"),
        (b"nan,false,pos\n", "text/csv", "'amount' of event 0 is nan"),
        (b"12.5,false,pos\n-inf,true,web\n", "text/csv", "'amount' of event 1 is -inf"),
        (b"amount,is_foreign,channel\n", "text/csv", "no events"),
        (b"12.5,maybe,pos\n", "text/csv", "maybe"),
        (b"12.5,false\n", "text/csv", "hold 3 values"),
        (b"12.5,false,pos,extra\n", "text/csv", "3 values"),
    ],
)
def test_refusals_name_the_problem(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        decode_events(body, content_type, SIGNATURE)


def test_csv_header_may_order_the_columns() -> None:
    frame = decode_events(b"channel,amount,is_foreign\npos,12.5,false\n", "text/csv", SIGNATURE)
    assert frame.row(0, named=True) == EVENT


def test_a_wrong_content_type_is_its_own_error() -> None:
    with pytest.raises(UnsupportedMediaType, match="application/x-www-form-urlencoded"):
        decode_events(b"a=1", "application/x-www-form-urlencoded", SIGNATURE)


def test_encodings_name_the_models_output() -> None:
    scores = np.array([0.25], dtype=np.float32)
    body, _ = encode_scores(scores, "application/jsonlines", "risk")
    assert body == b'{"risk":0.25}\n'
