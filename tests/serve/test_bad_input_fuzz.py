"""Thousands of generated requests against the running server: never a 5xx, every 4xx explains.

The requests mix the serving paths (SageMaker, container, Open Inference Protocol, unknown
ones), methods, content types, headers and bodies: events with fields swapped for any JSON
value, MLflow shapes, CSV rows of odd cells (NaN, inf, quotes, wrong counts), JSON lines,
v2 tensors with wrong types, shapes and binary lengths, and raw bytes.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.pipeline import BackgroundServer
from shipyard.train import TrainResult
from tests.serve.test_sagemaker_runtime import event_of

# Hypothesis draws a batch of requests per example: its own bookkeeping per example costs as
# much as generating one request, so batches halve the test's time for the same requests.
BATCH = 10
EXAMPLES = 520  # x BATCH: at least 5,000 requests must reach the server
JSON_TYPES = ["application/json", "text/csv", "application/jsonlines", "application/x-ndjson"]
OTHER_TYPES = ["application/xml", "text/plain", "application/x-www-form-urlencoded", ""]
V2_TYPES = ["FP32", "FP64", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "FP8", "STRING"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)
header_text = st.text(alphabet=string.printable.strip() + " ", max_size=40).map(str.strip)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # the stdlib writes integers beyond 64 bits too


@st.composite
def events(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    event = dict(base)
    if draw(st.booleans()):
        return event
    for field in draw(st.lists(st.sampled_from(sorted(base)), max_size=3)):
        if draw(st.booleans()):
            event[field] = draw(json_values)
        else:
            event.pop(field, None)
    if draw(st.booleans()):
        event[draw(st.text(max_size=6))] = draw(json_values)
    return event


@st.composite
def json_bodies(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    rows = draw(st.lists(events(base), min_size=0, max_size=3))
    columns = list(base)
    shape = draw(
        st.sampled_from(
            ["event", "list", "records", "instances", "inputs_rows", "split", "columnar", "any"]
        )
    )
    payload: Any
    if shape == "event":
        payload = rows[0] if rows else {}
    elif shape == "list":
        payload = rows
    elif shape == "records":
        payload = {"dataframe_records": rows}
    elif shape == "instances":
        payload = {"instances": rows}
    elif shape == "inputs_rows":
        payload = {
            "inputs": [[r.get(c) for c in columns][: draw(st.integers(0, 20))] for r in rows]
        }
    elif shape == "split":
        payload = {
            "dataframe_split": {
                "columns": draw(st.sampled_from([columns, columns[:-1], [1, 2], "x"])),
                "data": [[r.get(c) for c in columns] for r in rows],
            }
        }
    elif shape == "columnar":
        payload = {"inputs": {c: [r.get(c) for r in rows] for c in columns}}
    else:
        payload = draw(json_values)
    body = _dumps(payload)
    if draw(st.integers(0, 9)) == 0:  # a corrupted JSON body, or a non-finite literal
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.sampled_from([b"NaN", b"Infinity", b"1e999", b"}", b"\xff"]))
    return body


@st.composite
def csv_bodies(draw: st.DrawFn, base: dict[str, Any], columns: list[str]) -> bytes:
    cell = st.sampled_from(
        ["1.5", "0", "-3", "nan", "inf", "", "true", "false", "pos", '"a,b"', "GB"]
    )
    valid = [str(base[c]).lower() if isinstance(base[c], bool) else str(base[c]) for c in columns]
    lines = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            row = list(valid)
            if draw(st.booleans()):
                row[draw(st.integers(0, len(row) - 1))] = draw(st.one_of(cell, st.text(max_size=5)))
        else:
            width = len(columns) + draw(st.integers(-2, 2))
            row = [draw(st.one_of(cell, st.text(max_size=5))) for _ in range(width)]
        lines.append(",".join(row))
    if draw(st.booleans()):
        lines.insert(0, ",".join(draw(st.permutations(columns))))
    return "\n".join(lines).encode("utf-8", errors="surrogatepass")


@st.composite
def jsonlines_bodies(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    lines = [_dumps(draw(events(base))) for _ in range(draw(st.integers(0, 3)))]
    if draw(st.integers(0, 4)) == 0:
        lines.append(draw(st.sampled_from([b"[1]", b"{", b"NaN", b'"x"'])))
    return b"\n".join(lines)


@st.composite
def v2_bodies(
    draw: st.DrawFn, base: dict[str, Any], signature: dict[str, str]
) -> tuple[bytes, dict[str, str]]:
    if draw(st.booleans()):
        return _dumps(draw(valid_v2_request(base, signature))), {}
    rows = draw(st.integers(0, 3))
    inputs = []
    for name in draw(st.permutations(list(signature) + ["unknown"]))[: draw(st.integers(0, 19))]:
        tensor: dict[str, Any] = {
            "name": name,
            "datatype": draw(st.sampled_from(V2_TYPES)),
            "shape": draw(st.sampled_from([[rows], [rows, 1], [rows, 2], [-1], "x"])),
        }
        if draw(st.integers(0, 4)) == 0:
            tensor["parameters"] = {"binary_data_size": draw(st.integers(-1, 40))}
        else:
            tensor["data"] = draw(st.lists(scalars, min_size=rows, max_size=rows + 1))
        inputs.append(tensor)
    request: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        request["id"] = draw(st.one_of(st.text(max_size=5), st.integers()))
    if draw(st.booleans()):
        request["outputs"] = [{"name": draw(st.sampled_from(["fraud_probability", "x"]))}]
    header = _dumps(request)
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        tail = draw(st.binary(max_size=48))
        length = draw(st.sampled_from([len(header), len(header) + 3, 0, -1]))
        headers["Inference-Header-Content-Length"] = str(length)
        return header + tail, headers
    return header, headers


@st.composite
def valid_v2_request(
    draw: st.DrawFn, base: dict[str, Any], signature: dict[str, str]
) -> dict[str, Any]:
    """A request that scores, then maybe one thing wrong with one input."""
    kinds = {"float": "FP64", "bool": "BOOL", "string": "BYTES"}
    rows = draw(st.integers(1, 3))
    shape = draw(st.sampled_from([[rows], [rows, 1]]))
    inputs = [
        {"name": c, "datatype": kinds[k], "shape": shape, "data": [base[c]] * rows}
        for c, k in signature.items()
    ]
    if draw(st.booleans()):
        tensor = draw(st.sampled_from(inputs))
        change = draw(st.sampled_from(["datatype", "value", "shape", "drop", "name"]))
        if change == "datatype":
            tensor["datatype"] = draw(st.sampled_from(V2_TYPES))
        elif change == "value":
            tensor["data"][0] = draw(scalars)
        elif change == "shape":
            tensor["shape"] = draw(st.sampled_from([[rows + 1], [rows, 2], [], [0]]))
        elif change == "drop":
            inputs.remove(tensor)
        else:
            tensor["name"] = draw(st.text(max_size=6))
    return {"id": "fuzz", "inputs": inputs}


@st.composite
def http_requests(
    draw: st.DrawFn, base: dict[str, Any], signature: dict[str, str]
) -> tuple[str, str, dict[str, str], bytes]:
    segment = st.text(
        alphabet=string.ascii_letters + string.digits + "-._~", min_size=1, max_size=10
    )
    family = draw(st.sampled_from(["sagemaker", "sagemaker", "container", "v2", "v2", "other"]))
    headers: dict[str, str] = {}
    if family == "v2":
        name = draw(st.sampled_from(["fraud", "fraud.AllTraffic", "fraud.B", "nope"]) | segment)
        method, path = draw(
            st.sampled_from(
                [
                    ("POST", f"/v2/models/{name}/infer"),
                    ("POST", f"/v2/models/{name}/infer"),
                    ("POST", f"/v2/models/{name}/versions/AllTraffic/infer"),
                    ("GET", f"/v2/models/{name}"),
                    ("GET", f"/v2/models/{name}/ready"),
                    ("GET", "/v2"),
                    ("GET", "/v2/health/ready"),
                ]
            )
        )
        body, headers = draw(v2_bodies(base, signature))
        if draw(st.integers(0, 5)) == 0:
            body = draw(st.binary(max_size=64))
    else:
        method = "POST"
        if family == "sagemaker":
            name = draw(st.sampled_from(["fraud", "fraud", "nope"]) | segment)
            path = f"/endpoints/{name}/invocations"
        elif family == "container":
            method, path = draw(
                st.sampled_from(
                    [
                        ("POST", "/invocations"),
                        ("POST", "/invocations?endpoint=fraud"),
                        ("POST", "/invocations?endpoint=nope"),
                        ("GET", "/ping"),
                    ]
                )
            )
        else:
            path = "/" + "/".join(draw(st.lists(segment, min_size=1, max_size=3)))
        kind, body = draw(
            st.one_of(
                st.tuples(st.just("application/json"), json_bodies(base)),
                st.tuples(st.just("text/csv"), csv_bodies(base, list(signature))),
                st.tuples(st.just("application/jsonlines"), jsonlines_bodies(base)),
                st.tuples(st.just(""), st.binary(max_size=64)),
                st.tuples(st.just("application/json"), st.just(b"")),
            )
        )
        if draw(st.integers(0, 3)) == 0:
            kind = draw(st.sampled_from(JSON_TYPES + OTHER_TYPES))
        if kind:
            headers["Content-Type"] = kind
        for header, values in [
            (
                "X-Amzn-SageMaker-Target-Variant",
                st.sampled_from(["AllTraffic", "B", ""]) | header_text,
            ),
            ("X-Amzn-SageMaker-Target-Model", st.sampled_from(["m.tar.gz", ""]) | header_text),
            ("X-Amzn-SageMaker-Custom-Attributes", header_text),
            ("Accept", st.sampled_from(["text/csv", "application/jsonlines", "*/*", "x/y"])),
        ]:
            if draw(st.integers(0, 5)) == 0:
                headers[header] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST"]))
    return method, path, headers, body


def _message_of(answer: httpx.Response) -> str:
    body = answer.json()
    if "error" in body:
        return str(body["error"])
    if answer.status_code == 424:
        assert body["OriginalStatusCode"] in (400, 415), body  # a healthy model never fails
        return str(body["OriginalMessage"])
    return str(body.get("Message") or body.get("message"))


@pytest.mark.slow  # about 30 s on 2 cores: 5,200 requests generated by hypothesis
def test_generated_requests_never_get_a_5xx(server: BackgroundServer, trained: TrainResult) -> None:
    base = event_of(trained)
    signature = trained.contents.prep.input_types
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=server.url, timeout=30) as http:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(requests=st.lists(http_requests(base, signature), min_size=BATCH, max_size=BATCH))
        def send(requests: list[tuple[str, str, dict[str, str], bytes]]) -> None:
            for method, path, headers, body in requests:
                answer = http.request(method, path, headers=headers, content=body)
                statuses[answer.status_code] += 1
                assert answer.status_code < 500, (method, path, headers, body, answer.text)
                if answer.status_code >= 400:
                    message = _message_of(answer)
                    assert len(message) >= 12 and message != "None", (path, body, answer.text)

        send()
    assert sum(statuses.values()) >= 5_000, statuses
    assert statuses[200] > 100 and statuses[424] > 100 and statuses[400] > 100, statuses
    print(dict(sorted(statuses.items())))
