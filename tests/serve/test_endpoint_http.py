"""The serving contract over real HTTP: boto3's sagemaker-runtime client, curl-style calls."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import httpx
import numpy as np
import orjson
import polars as pl
import pytest
from botocore.config import Config

from shipyard.core.errors import IntegrityError
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import FAILED, IN_SERVICE, VariantSpec
from shipyard.train import TrainResult
from tests.serve.conftest import register


def _runtime_client(url: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 5, "mode": "legacy"}),
    )


def _raw_holdout(trained: TrainResult, rows: int) -> pl.DataFrame:
    holdout = trained.holdout_events.head(rows)
    return holdout.drop("is_fraud")


def test_endpoint_scores_equal_the_trainers_scores(
    server: BackgroundServer, trained: TrainResult
) -> None:
    events = _raw_holdout(trained, 300)
    expected = trained.holdout_scores[:300]
    url = f"{server.url}/endpoints/fraud/invocations"
    as_json = httpx.post(
        url, content=orjson.dumps(events.to_dicts()), headers={"Content-Type": "application/json"}
    )
    assert as_json.status_code == 200, as_json.text
    scores = np.array([p["fraud_probability"] for p in as_json.json()["predictions"]])
    np.testing.assert_allclose(scores, expected, atol=1e-6)

    lines = b"\n".join(orjson.dumps(row) for row in events.to_dicts())
    as_lines = httpx.post(
        url, content=lines, headers={"Content-Type": "application/jsonlines", "Accept": "text/csv"}
    )
    np.testing.assert_allclose(np.array(as_lines.text.split(), dtype=float), expected, atol=1e-6)

    signature = list(trained.contents.prep.input_types)
    csv = events.select(signature).write_csv(include_header=False).encode()
    as_csv = httpx.post(
        url, content=csv, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert as_csv.status_code == 200, as_csv.text
    np.testing.assert_allclose(np.array(as_csv.text.split(), dtype=float), expected, atol=1e-6)


def test_boto3_invoke_endpoint(server: BackgroundServer, trained: TrainResult) -> None:
    client = _runtime_client(server.url)
    event = _raw_holdout(trained, 1).to_dicts()[0]
    response = client.invoke_endpoint(
        EndpointName="fraud", Body=orjson.dumps(event), ContentType="application/json"
    )
    assert response["InvokedProductionVariant"] == "AllTraffic"
    body = orjson.loads(response["Body"].read())
    assert body["predictions"][0]["fraud_probability"] == pytest.approx(
        float(trained.holdout_scores[0]), abs=1e-6
    )


def test_boto3_sees_model_error_and_does_not_retry(
    server: BackgroundServer, deployed: Workspace
) -> None:
    client = _runtime_client(server.url)
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(
            EndpointName="fraud", Body=b'{"amount": "lots"}', ContentType="application/json"
        )
    error = caught.value.response
    assert error["OriginalStatusCode"] == 400
    assert "missing field" in error["OriginalMessage"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    sent = deployed.metrics.query(
        "Invocations", "Sum", endpoint="fraud", variant=None, start_s=0, end_s=1e12
    )
    assert sent == 1  # a ModelError is not retried by boto3


def test_unknown_endpoint_and_variant_are_validation_errors(server: BackgroundServer) -> None:
    client = _runtime_client(server.url)
    with pytest.raises(client.exceptions.ValidationError, match="does not exist|not in service"):
        client.invoke_endpoint(EndpointName="nope", Body=b"{}", ContentType="application/json")
    with pytest.raises(client.exceptions.ValidationError, match="no variant 'B'"):
        client.invoke_endpoint(
            EndpointName="fraud", Body=b"{}", ContentType="application/json", TargetVariant="B"
        )


def test_unseen_category_is_scored_as_missing(
    server: BackgroundServer, trained: TrainResult
) -> None:
    event = _raw_holdout(trained, 1).to_dicts()[0]
    event["merchant_category"] = "0000"
    answer = httpx.post(f"{server.url}/invocations", content=orjson.dumps(event))
    assert answer.status_code == 200
    assert answer.headers["X-Shipyard-Unseen-Categories"] == "1"
    assert 0.0 <= answer.json()["predictions"][0]["fraud_probability"] <= 1.0


def test_ping_and_describe(server: BackgroundServer) -> None:
    assert httpx.get(f"{server.url}/ping").status_code == 200
    described = httpx.get(f"{server.url}/api/v1/endpoints/fraud").json()
    assert described["EndpointStatus"] == IN_SERVICE
    variant = described["ProductionVariants"][0]
    assert variant["ModelPackage"] == "fraud@1"
    assert list(variant["InputSignature"])[:2] == ["amount", "card_age_days"]
    assert variant["InputSignature"]["channel"] == "string"
    assert described["CreationTime"].endswith("+00:00")


BAD_BODIES = [
    (b"", "application/json", "body is empty"),
    (b"{x", "application/json", "not valid JSON"),
    (b"1,2", "text/csv", "values"),
    (b"<a/>", "application/xml", "not supported"),
    (b'{"dataframe_split": {"columns": 5, "data": [[1]]}}', "application/json", "columns"),
    (b'{"dataframe_split": {"columns": [["a"]], "data": [[1]]}}', "application/json", "columns"),
    (b'{"amount": {"a": 1}}', "application/json", "objects or lists"),
    (b'{"amount": [1, 2]}', "application/json", "objects or lists"),
    (b"[1, 2]", "application/json", "not an event object"),
    (b'{"instances": {}}', "application/json", "empty object"),
    (b'{"instances": 5}', "application/json", "list of event objects"),
    (b'{"a": 1}\n[2]\n', "application/jsonlines", "line 2"),
]


@pytest.mark.parametrize(("body", "content_type", "message"), BAD_BODIES)
def test_bad_requests_are_4xx_never_5xx(
    server: BackgroundServer, body: bytes, content_type: str, message: str
) -> None:
    url = f"{server.url}/endpoints/fraud/invocations"
    answer = httpx.post(url, content=body, headers={"Content-Type": content_type})
    assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)
    assert message in answer.json()["Message"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", "12.5", "'amount' must be a number, got string"),
        ("amount", True, "'amount' must be a number, got boolean"),
        ("is_foreign", 2, "'is_foreign' must be true or false"),
        ("merchant_category", 5411, "'merchant_category' must be a string"),
    ],
)
def test_values_the_contract_refuses_are_refused(
    server: BackgroundServer, trained: TrainResult, field: str, value: object, message: str
) -> None:
    event = _raw_holdout(trained, 1).to_dicts()[0]
    event[field] = value
    answer = httpx.post(f"{server.url}/invocations", content=orjson.dumps(event))
    assert answer.status_code == 424
    assert answer.json()["OriginalStatusCode"] == 400
    assert message in answer.json()["OriginalMessage"]


def test_an_oversized_chunked_body_is_refused(server: BackgroundServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(7):
            yield b" " * (1024 * 1024)

    answer = httpx.post(f"{server.url}/invocations", content=chunks())
    assert answer.status_code == 413


def test_an_empty_endpoint_query_means_the_default(server: BackgroundServer) -> None:
    answer = httpx.post(f"{server.url}/invocations?endpoint=", content=b"{}")
    assert answer.status_code == 424  # routed to 'fraud', whose model refuses an empty event


def test_a_model_that_breaks_is_a_model_error_and_counts_as_5xx(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    class Broken:
        def inplace_predict(self, matrix: object) -> object:
            raise RuntimeError("booster exploded")

    deployed.endpoints.runtime("fraud").variants[0].model.booster = Broken()
    event = _raw_holdout(trained, 1).to_dicts()[0]
    answer = httpx.post(f"{server.url}/invocations", content=orjson.dumps(event))
    assert answer.status_code == 424
    assert answer.json()["OriginalStatusCode"] == 500
    assert "booster exploded" in answer.json()["OriginalMessage"]
    errors = deployed.metrics.query(
        "Invocation5XXErrors", "Sum", endpoint="fraud", variant=None, start_s=0, end_s=1e12
    )
    assert errors == 1


def test_a_tampered_artifact_is_refused_and_the_endpoint_fails(
    workspace: Workspace, trained: TrainResult
) -> None:
    ref = register(workspace, trained.contents)
    info = workspace.registry.get_version(ref)
    model_key = workspace.store.key_of(info.artifact_uri).replace("package.json", "model.ubj")
    workspace.store.put_bytes(model_key, b"not the model")
    with pytest.raises(IntegrityError, match="sha256"):
        workspace.endpoints.create_endpoint("broken", [VariantSpec("AllTraffic", ref)])
    description = workspace.endpoints.describe("broken")
    assert description.status == FAILED
    assert "sha256" in (description.failure_reason or "")
