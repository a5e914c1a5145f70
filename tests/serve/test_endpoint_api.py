"""The endpoint management API over real HTTP: configs, create, update, describe, delete."""

from __future__ import annotations

import httpx
import orjson

from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.train import TrainResult
from tests.serve.conftest import register


def _config(name: str, *variants: tuple[str, str, float], **extra: object) -> dict[str, object]:
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {"VariantName": v, "ModelName": m, "InitialVariantWeight": w, "InitialInstanceCount": 2}
            for v, m, w in variants
        ],
        **extra,
    }


def test_endpoint_lifecycle_over_http(workspace: Workspace, trained: TrainResult) -> None:
    ref = register(workspace, trained.contents)
    event = trained.holdout_events.head(1).drop("is_fraud").to_dicts()[0]
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        made = client.post("/api/v1/endpoint-configs", json=_config("one", ("A", str(ref), 1.0)))
        assert made.status_code == 201, made.text
        again = client.post("/api/v1/endpoint-configs", json=_config("one", ("A", str(ref), 1.0)))
        assert again.status_code == 409 and "already exists" in again.json()["message"]
        created = client.post(
            "/api/v1/endpoints", json={"EndpointName": "ep", "EndpointConfigName": "one"}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["EndpointStatus"] == "InService"
        assert body["ProductionVariants"][0]["CurrentInstanceCount"] == 2
        answer = client.post("/endpoints/ep/invocations", content=orjson.dumps(event))
        assert (
            answer.status_code == 200 and answer.headers["x-amzn-invoked-production-variant"] == "A"
        )

        config = _config("two", ("A", str(ref), 1.0), ("B", str(ref), 3.0))
        assert client.post("/api/v1/endpoint-configs", json=config).status_code == 201
        updated = client.put("/api/v1/endpoints/ep", json={"EndpointConfigName": "two"})
        assert updated.status_code == 200, updated.text
        assert [v["CurrentWeight"] for v in updated.json()["ProductionVariants"]] == [1.0, 3.0]
        listed = client.get("/api/v1/endpoints").json()["Endpoints"]
        assert [e["EndpointConfigName"] for e in listed] == ["two"]

        assert client.delete("/api/v1/endpoints/ep").status_code == 200
        gone = client.get("/api/v1/endpoints/ep")
        assert gone.status_code == 404 and "does not exist" in gone.json()["message"]
        refused = client.post("/endpoints/ep/invocations", content=orjson.dumps(event))
        assert refused.status_code == 400


def test_bad_requests_name_the_problem(workspace: Workspace, trained: TrainResult) -> None:
    ref = register(workspace, trained.contents)
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        cases = [
            ("POST", "/api/v1/endpoint-configs", b"{", 400, "not valid JSON"),
            ("POST", "/api/v1/endpoint-configs", {"EndpointConfigName": "x"}, 400,
             "ProductionVariants"),
            ("POST", "/api/v1/endpoint-configs",
             _config("x", ("A", "fraud", 1.0)), 400, "GROUP@VERSION"),
            ("POST", "/api/v1/endpoint-configs",
             _config("x", ("A", str(ref), -1.0)), 400, "InitialVariantWeight"),
            ("POST", "/api/v1/endpoint-configs",
             _config("x", ("A", str(ref), 1.0), DataCaptureConfig={"EnableCapture": True}), 400,
             "InitialSamplingPercentage"),
            ("POST", "/api/v1/endpoints", {"EndpointName": "ep"}, 400, "EndpointConfigName"),
            ("POST", "/api/v1/endpoints", {"EndpointName": "ep", "EndpointConfigName": "nope"},
             404, "endpoint config 'nope'"),
            ("PUT", "/api/v1/endpoints/nope", {"EndpointConfigName": "x"}, 404, "'nope'"),
            ("DELETE", "/api/v1/endpoints/nope", None, 404, "'nope'"),
        ]  # fmt: skip
        for method, path, body, status, words in cases:
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            answer = client.request(method, path, content=content)
            assert answer.status_code == status, (path, body, answer.text)
            assert words in answer.json()["message"], answer.text


def test_bad_model_fails_create_and_keeps_the_old_config_on_update(
    workspace: Workspace, trained: TrainResult
) -> None:
    good = register(workspace, trained.contents)
    stored = workspace.registry.get_version(good)
    tampered = workspace.registry.register(
        "fraud", artifact_uri=stored.artifact_uri, sha256="0" * 64, framework="xgboost",
        framework_version="x", signature={}, metrics={}, params={}, lineage={},
    ).ref  # fmt: skip
    service = workspace.endpoints
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        for name, ref in (("good", good), ("bad", tampered)):
            config = _config(name, ("A", str(ref), 1.0))
            assert client.post("/api/v1/endpoint-configs", json=config).status_code == 201
        failed = client.post(
            "/api/v1/endpoints", json={"EndpointName": "broken", "EndpointConfigName": "bad"}
        ).json()
        assert failed["EndpointStatus"] == "Failed"
        assert "sha256" in failed["FailureReason"]
        client.post("/api/v1/endpoints", json={"EndpointName": "ep", "EndpointConfigName": "good"})
        refused = client.put("/api/v1/endpoints/ep", json={"EndpointConfigName": "bad"})
        assert refused.status_code == 409 and "sha256" in refused.json()["message"]
        after = client.get("/api/v1/endpoints/ep").json()
        assert after["EndpointStatus"] == "InService"
        assert after["EndpointConfigName"] == "good"
        event = trained.holdout_events.head(1).drop("is_fraud").to_dicts()[0]
        assert (
            client.post("/endpoints/ep/invocations", content=orjson.dumps(event)).status_code == 200
        )
        assert client.delete("/api/v1/endpoints/broken").status_code == 200
    assert [d.name for d in service.list_endpoints()] == ["ep"]
