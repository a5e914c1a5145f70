from __future__ import annotations

import numpy as np
import orjson
import pytest

from shipyard.core.errors import InvalidRequestError
from shipyard.serve import decode_events, encode_scores

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
