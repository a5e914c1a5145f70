"""InvokeEndpoint as boto3's unchanged sagemaker-runtime client sees it, over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import numpy as np
import orjson
import pytest
from botocore.config import Config

from shipyard.core.config import Settings
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult
from tests.serve.conftest import register


def runtime_client(url: str, key_id: str = "x"):  # type: ignore[no-untyped-def]
    """boto3 as a user configures it: endpoint_url, any credentials, default retries (legacy,
    4 retries on 429/5xx)."""
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key="any-secret",
        config=Config(retries={"max_attempts": 5, "mode": "legacy"}),
    )


def count_attempts(client) -> list[int]:  # type: ignore[no-untyped-def]
    """Every HTTP attempt boto3 makes for InvokeEndpoint, retries included."""
    attempts: list[int] = []
    client.meta.events.register(
        "before-send.sagemaker-runtime.InvokeEndpoint", lambda **_: attempts.append(1)
    )
    return attempts


def event_of(trained: TrainResult, row: int = 0) -> dict[str, object]:
    return trained.holdout_events.drop("is_fraud").row(row, named=True)


def invocations(workspace: Workspace, endpoint: str) -> float | None:
    """Requests that reached the endpoint's scoring, as the server counted them."""
    return workspace.metrics.query(
        "Invocations", "Sum", endpoint=endpoint, variant=None, start_s=0, end_s=1e12
    )


@pytest.fixture
def ab_server(workspace: Workspace, trained: TrainResult) -> Iterator[BackgroundServer]:
    """Endpoint 'ab' with variants A (fraud@1) and B (fraud@2), equal weights."""
    first, second = register(workspace, trained.contents), register(workspace, trained.contents)
    workspace.endpoints.create_endpoint(
        "ab", [VariantSpec("A", first, 1.0), VariantSpec("B", second, 1.0)]
    )
    with BackgroundServer(workspace) as running:
        yield running


def test_json_and_csv_return_the_body_and_the_invoked_variant(
    server: BackgroundServer, trained: TrainResult
) -> None:
    client = runtime_client(server.url)
    events = trained.holdout_events.drop("is_fraud").head(5)
    as_json = client.invoke_endpoint(
        EndpointName="fraud", Body=orjson.dumps(events.to_dicts()), ContentType="application/json"
    )
    assert as_json["InvokedProductionVariant"] == "AllTraffic"
    assert as_json["ContentType"] == "application/json"
    scores = [p["fraud_probability"] for p in orjson.loads(as_json["Body"].read())["predictions"]]
    np.testing.assert_allclose(scores, trained.holdout_scores[:5], atol=1e-6)

    csv = events.select(list(trained.contents.prep.input_types)).write_csv(include_header=False)
    as_csv = client.invoke_endpoint(
        EndpointName="fraud", Body=csv.encode(), ContentType="text/csv", Accept="text/csv"
    )
    assert as_csv["ContentType"].startswith("text/csv")
    values = np.array(as_csv["Body"].read().decode().split(), dtype=float)
    np.testing.assert_allclose(values, trained.holdout_scores[:5], atol=1e-6)


def test_custom_attributes_are_echoed(server: BackgroundServer, trained: TrainResult) -> None:
    client = runtime_client(server.url)
    answer = client.invoke_endpoint(
        EndpointName="fraud",
        Body=orjson.dumps(event_of(trained)),
        ContentType="application/json",
        CustomAttributes="trace=abc-123;tenant=7",
    )
    assert answer["CustomAttributes"] == "trace=abc-123;tenant=7"
    plain = client.invoke_endpoint(
        EndpointName="fraud", Body=orjson.dumps(event_of(trained)), ContentType="application/json"
    )
    assert "CustomAttributes" not in plain


def test_target_variant_routes_to_that_variant(
    ab_server: BackgroundServer, trained: TrainResult
) -> None:
    client = runtime_client(ab_server.url)
    body = orjson.dumps(event_of(trained))
    for variant in ("A", "B"):
        served = {
            client.invoke_endpoint(
                EndpointName="ab", Body=body, ContentType="application/json", TargetVariant=variant
            )["InvokedProductionVariant"]
            for _ in range(12)
        }
        assert served == {variant}
    weighted = {
        client.invoke_endpoint(EndpointName="ab", Body=body, ContentType="application/json")[
            "InvokedProductionVariant"
        ]
        for _ in range(40)
    }
    assert weighted == {"A", "B"}  # 1:1 weights; both missing in 40 draws has p = 2**-39


def test_unknown_variant_and_target_model_are_validation_errors_naming_them(
    ab_server: BackgroundServer,
) -> None:
    client = runtime_client(ab_server.url)
    attempts = count_attempts(client)
    with pytest.raises(client.exceptions.ValidationError, match="no variant 'C'; variants: A, B"):
        client.invoke_endpoint(
            EndpointName="ab", Body=b"{}", ContentType="application/json", TargetVariant="C"
        )
    with pytest.raises(client.exceptions.ValidationError, match="not a multi-model endpoint"):
        client.invoke_endpoint(
            EndpointName="ab", Body=b"{}", ContentType="application/json", TargetModel="m.tar.gz"
        )
    with pytest.raises(client.exceptions.ValidationError, match="endpoint 'nope'"):
        client.invoke_endpoint(EndpointName="nope", Body=b"{}", ContentType="application/json")
    assert len(attempts) == 3  # none retried


def test_a_model_error_reaches_the_server_exactly_once(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    client = runtime_client(server.url)
    attempts = count_attempts(client)
    event = event_of(trained)
    event["amount"] = "lots"
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(
            EndpointName="fraud", Body=orjson.dumps(event), ContentType="application/json"
        )
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 400
    assert "'amount' must be a number, got string" in response["OriginalMessage"]
    assert "Received client error (400) from primary" in response["Error"]["Message"]
    assert len(attempts) == 1
    assert invocations(deployed, "fraud") == 1


def test_a_wrong_content_type_is_a_model_error_415(server: BackgroundServer) -> None:
    client = runtime_client(server.url)
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="fraud", Body=b"<a/>", ContentType="application/xml")
    assert caught.value.response["OriginalStatusCode"] == 415
    assert "'application/xml' is not supported" in caught.value.response["OriginalMessage"]


def test_a_body_over_6_mib_is_413_and_not_retried(server: BackgroundServer) -> None:
    client = runtime_client(server.url)
    attempts = count_attempts(client)
    with pytest.raises(client.exceptions.ValidationError, match="limit of 6291456 bytes") as caught:
        client.invoke_endpoint(
            EndpointName="fraud", Body=b" " * (6 * 1024 * 1024 + 1), ContentType="text/csv"
        )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert len(attempts) == 1


def test_a_body_of_exactly_6_mib_is_read(server: BackgroundServer, trained: TrainResult) -> None:
    line = orjson.dumps(event_of(trained)) + b"\n"
    body = line * (6 * 1024 * 1024 // len(line))
    body += b" " * (6 * 1024 * 1024 - len(body))
    answer = httpx.post(
        f"{server.url}/endpoints/fraud/invocations",
        content=body,
        headers={"Content-Type": "application/jsonlines"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.json()["predictions"]) == 6 * 1024 * 1024 // len(line)


def test_container_contract_ping_and_invocations(
    server: BackgroundServer, trained: TrainResult
) -> None:
    ping = httpx.get(f"{server.url}/ping")
    assert ping.status_code == 200 and ping.content == b""
    signature = list(trained.contents.prep.input_types)
    csv = trained.holdout_events.head(2).select(signature).write_csv(include_header=False)
    answer = httpx.post(
        f"{server.url}/invocations", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert len(answer.json()["predictions"]) == 2


def _errors_5xx(workspace: Workspace, endpoint: str) -> float | None:
    return workspace.metrics.query(
        "Invocation5XXErrors", "Sum", endpoint=endpoint, variant=None, start_s=0, end_s=1e12
    )


class _SlowBooster:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def inplace_predict(self, matrix: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return np.zeros(len(matrix), dtype=np.float32)


def test_a_model_slower_than_the_timeout_is_a_model_error_and_blocks_nothing(
    tmp_path: Path, trained: TrainResult
) -> None:
    workspace = Workspace.open(Settings(home=tmp_path / "home", request_timeout_s=0.5))
    try:
        ref = register(workspace, trained.contents)
        workspace.endpoints.create_endpoint("slow", [VariantSpec("AllTraffic", ref)])
        workspace.endpoints.runtime("slow").variants[0].model.booster = _SlowBooster(2.0)
        with BackgroundServer(workspace) as server:
            client = runtime_client(server.url)
            attempts = count_attempts(client)
            pings: list[float] = []

            def ping_while_scoring() -> None:
                time.sleep(0.1)
                started = time.perf_counter()
                assert httpx.get(f"{server.url}/ping").status_code == 200
                pings.append(time.perf_counter() - started)

            pinger = threading.Thread(target=ping_while_scoring)
            pinger.start()
            started = time.perf_counter()
            with pytest.raises(client.exceptions.ModelError) as caught:
                client.invoke_endpoint(
                    EndpointName="slow",
                    Body=orjson.dumps(event_of(trained)),
                    ContentType="application/json",
                )
            elapsed = time.perf_counter() - started
            pinger.join()
        response = caught.value.response
        assert response["OriginalStatusCode"] == 0  # as SageMaker reports a container timeout
        assert "did not answer within 0.5 s" in response["OriginalMessage"]
        assert "Received server error (0)" in response["Error"]["Message"]
        assert 0.5 <= elapsed < 1.5
        assert len(attempts) == 1
        assert pings and pings[0] < 0.3  # the event loop kept answering during the slow call
        deadline = time.monotonic() + 5
        while not _errors_5xx(workspace, "slow") and time.monotonic() < deadline:
            time.sleep(0.1)  # the abandoned scoring finishes in the background
        assert _errors_5xx(workspace, "slow") == 1  # and counts as the model error it was
    finally:
        workspace.close()
