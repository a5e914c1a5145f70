"""The Open Inference Protocol v2 as tritonclient's HTTP client sees it, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult
from tests.serve.conftest import register

NUMPY_TYPES = {"FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[httpclient.InferenceServerClient]:
    triton = httpclient.InferenceServerClient(url=f"{server.host}:{server.port}")
    yield triton
    triton.close()


def infer_inputs(
    events: pl.DataFrame, signature: dict[str, str], *, binary: bool
) -> list[httpclient.InferInput]:
    """One InferInput per signature column, typed as the model's metadata says."""
    kinds = {"float": "FP64", "bool": "BOOL", "string": "BYTES"}
    inputs = []
    for column, kind in signature.items():
        datatype = kinds[kind]
        values: np.ndarray = np.array(events[column].to_list(), dtype=NUMPY_TYPES[datatype])
        if datatype == "BYTES":
            values = np.array([v.encode() for v in values], dtype=np.object_)
        tensor = httpclient.InferInput(column, [events.height], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_health_and_server_metadata(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "shipyard"
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_readiness_and_metadata_come_from_the_signature(
    client: httpclient.InferenceServerClient, trained: TrainResult
) -> None:
    assert client.is_model_ready("fraud")
    assert client.is_model_ready("fraud", model_version="AllTraffic")
    assert not client.is_model_ready("nope")
    assert not client.is_model_ready("fraud", model_version="B")
    metadata = client.get_model_metadata("fraud")
    signature = trained.contents.prep.input_types
    assert [i["name"] for i in metadata["inputs"]] == list(signature)
    kinds = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert kinds["amount"] == "FP64" and kinds["is_foreign"] == "BOOL"
    assert kinds["channel"] == "BYTES"
    assert all(i["shape"] == [-1] for i in metadata["inputs"])
    assert metadata["outputs"] == [{"name": "fraud_probability", "datatype": "FP64", "shape": [-1]}]
    assert metadata["versions"] == ["AllTraffic"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_scores_like_the_trainer(
    client: httpclient.InferenceServerClient, trained: TrainResult, binary: bool
) -> None:
    events = trained.holdout_events.head(16)
    inputs = infer_inputs(events, trained.contents.prep.input_types, binary=binary)
    outputs = [httpclient.InferRequestedOutput("fraud_probability", binary_data=binary)]
    result = client.infer("fraud", inputs, outputs=outputs, request_id="req-7")
    scores = result.as_numpy("fraud_probability")
    assert scores is not None and scores.dtype == np.float64
    np.testing.assert_allclose(scores, trained.holdout_scores[:16], atol=1e-6)
    response = result.get_response()
    assert response["id"] == "req-7"
    assert response["model_version"] == "AllTraffic"
    assert response["parameters"]["model_package"] == "fraud@1"


def test_infer_with_tritonclients_defaults_gets_binary_outputs(
    client: httpclient.InferenceServerClient, trained: TrainResult
) -> None:
    events = trained.holdout_events.head(3)
    result = client.infer(
        "fraud", infer_inputs(events, trained.contents.prep.input_types, binary=True)
    )
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 3 * 8
    scores = result.as_numpy("fraud_probability")
    np.testing.assert_allclose(scores, trained.holdout_scores[:3], atol=1e-6)


def test_variants_are_versions(workspace: Workspace, trained: TrainResult) -> None:
    first, second = register(workspace, trained.contents), register(workspace, trained.contents)
    workspace.endpoints.create_endpoint(
        "ab", [VariantSpec("A", first, 1.0), VariantSpec("B", second, 1.0)]
    )
    with BackgroundServer(workspace) as server:
        client = httpclient.InferenceServerClient(url=f"{server.host}:{server.port}")
        events = trained.holdout_events.head(2)
        inputs = infer_inputs(events, trained.contents.prep.input_types, binary=True)
        by_path = client.infer("ab", inputs, model_version="B").get_response()
        by_name = client.infer("ab.A", inputs).get_response()
        metadata = client.get_model_metadata("ab.B")
        client.close()
    assert by_path["model_version"] == "B" and by_path["parameters"]["model_package"] == "fraud@2"
    assert by_name["model_version"] == "A" and by_name["model_name"] == "ab.A"
    assert metadata["versions"] == ["A", "B"]
    assert metadata["parameters"]["model_package"] == "fraud@2"


def test_infer_errors_are_4xx_naming_the_problem(
    client: httpclient.InferenceServerClient, trained: TrainResult
) -> None:
    events = trained.holdout_events.head(2)
    signature = trained.contents.prep.input_types
    inputs = infer_inputs(events, signature, binary=False)
    wrong = httpclient.InferInput("amount", [2], "BYTES")
    wrong.set_data_from_numpy(np.array([b"1", b"2"], dtype=np.object_), binary_data=False)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("fraud", [wrong, *inputs[1:]])
    assert caught.value.status() == "400"
    assert "input 'amount' is BYTES; the model reads it as FP64" in caught.value.message()

    with pytest.raises(InferenceServerException) as caught:
        client.infer("fraud", inputs[1:])
    assert caught.value.status() == "400" and "lacks input(s) amount" in caught.value.message()

    with pytest.raises(InferenceServerException) as caught:
        client.infer("nope", inputs)
    assert caught.value.status() == "404" and "endpoint 'nope'" in caught.value.message()

    with pytest.raises(InferenceServerException) as caught:
        client.infer("fraud", inputs, outputs=[httpclient.InferRequestedOutput("label")])
    assert (
        caught.value.status() == "400" and "output(s) label do not exist" in caught.value.message()
    )


def _json_request(trained: TrainResult, rows: int, shape_of: int = 1) -> dict[str, Any]:
    events = trained.holdout_events.head(rows)
    kinds = {"float": "FP64", "bool": "BOOL", "string": "BYTES"}
    shape = [rows] if shape_of == 1 else [rows, 1]
    return {
        "id": "abc",
        "inputs": [
            {"name": c, "datatype": kinds[k], "shape": shape, "data": events[c].to_list()}
            for c, k in trained.contents.prep.input_types.items()
        ],
    }


def test_plain_json_shapes_n_and_n_by_1(server: BackgroundServer, trained: TrainResult) -> None:
    for shape_of in (1, 2):
        answer = httpx.post(
            f"{server.url}/v2/models/fraud/infer", json=_json_request(trained, 3, shape_of)
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["id"] == "abc" and body["outputs"][0]["shape"] == [3]
        np.testing.assert_allclose(
            body["outputs"][0]["data"], trained.holdout_scores[:3], atol=1e-6
        )


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (lambda r: r["inputs"][0].update(shape=[3, 2]), 400, "[n] or [n, 1]"),
        (lambda r: r["inputs"][0].update(shape=[4]), 400, "has shape [4] but holds 3 values"),
        (lambda r: r["inputs"][0].update(datatype="FP8"), 400, "datatype 'FP8'"),
        (lambda r: r["inputs"][0]["data"].__setitem__(0, "x"), 400, "holds a string 'x'"),
        (lambda r: r["inputs"][11]["data"].__setitem__(0, 1), 400, "(BOOL) holds a number"),
        (lambda r: r["inputs"].append(dict(r["inputs"][0], name="zip")), 400, "zip are not read"),
        (lambda r: r.update(id=5), 400, "'id' must be a string"),
        (lambda r: r.update(inputs=[]), 400, "non-empty list"),
    ],
)
def test_raw_v2_errors(
    server: BackgroundServer,
    trained: TrainResult,
    mutate: Callable[[dict[str, Any]], object],
    status: int,
    message: str,
) -> None:
    request = _json_request(trained, 3)
    mutate(request)
    answer = httpx.post(f"{server.url}/v2/models/fraud/infer", json=request)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_binary_header_length_beyond_the_body_is_refused(server: BackgroundServer) -> None:
    answer = httpx.post(
        f"{server.url}/v2/models/fraud/infer",
        content=b'{"inputs": []}',
        headers={"Inference-Header-Content-Length": "999"},
    )
    assert answer.status_code == 400
    assert "Inference-Header-Content-Length" in answer.json()["error"]


def test_unknown_v2_route_is_json(server: BackgroundServer) -> None:
    answer = httpx.get(f"{server.url}/v2/repository/index")
    assert answer.status_code == 404
    assert "no route GET /v2/repository/index" in answer.json()["error"]


def test_nan_is_a_missing_number_and_infinity_is_refused(
    server: BackgroundServer, client: httpclient.InferenceServerClient, trained: TrainResult
) -> None:
    events = trained.holdout_events.head(2).with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(None)
        .otherwise(pl.col("device_trust_score"))
        .alias("device_trust_score")
    )
    signature = trained.contents.prep.input_types
    as_null = httpx.post(
        f"{server.url}/invocations", json=events.drop("is_fraud").to_dicts()
    ).json()["predictions"]
    for binary in (True, False):  # numpy NaN: raw bytes, or the bare token NaN in JSON
        scores = client.infer("fraud", infer_inputs(events, signature, binary=binary)).as_numpy(
            "fraud_probability"
        )
        np.testing.assert_allclose(scores, [p["fraud_probability"] for p in as_null], atol=1e-6)

    infinite = events.with_columns(pl.lit(float("inf")).alias("amount"))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("fraud", infer_inputs(infinite, signature, binary=True))
    assert caught.value.status() == "400"
    assert "'amount' of event 0 is inf" in caught.value.message()


def test_fp32_and_int64_inputs_score_as_fp64(
    client: httpclient.InferenceServerClient, trained: TrainResult
) -> None:
    events = trained.holdout_events.head(4)
    signature = trained.contents.prep.input_types
    inputs = infer_inputs(events, signature, binary=True)
    as_fp32 = httpclient.InferInput("amount", [4], "FP32")
    as_fp32.set_data_from_numpy(events["amount"].to_numpy().astype(np.float32))
    as_int64 = httpclient.InferInput("card_age_days", [4, 1], "INT64")
    as_int64.set_data_from_numpy(events["card_age_days"].to_numpy().astype(np.int64).reshape(4, 1))
    swapped = {"amount": as_fp32, "card_age_days": as_int64}
    mixed = [swapped.get(tensor.name(), tensor) for tensor in inputs]
    scores = client.infer("fraud", mixed).as_numpy("fraud_probability")
    # the model reads float32 features, so FP32 and INT64 carry the same values as FP64
    np.testing.assert_allclose(scores, trained.holdout_scores[:4], atol=1e-6)
