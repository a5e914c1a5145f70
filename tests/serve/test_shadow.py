"""A shadow variant over real HTTP: a faulty shadow never reaches the caller; its errors count."""

from __future__ import annotations

import httpx
import orjson

from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.train import TrainResult
from tests.serve.conftest import faulty, register


def test_faulty_shadow_never_affects_responses(workspace: Workspace, trained: TrainResult) -> None:
    good = register(workspace, trained.contents)
    broken = register(workspace, faulty(trained.contents, 1.0))
    events = trained.holdout_events.head(40).drop("is_fraud").to_dicts()
    config = {
        "EndpointConfigName": "with-shadow",
        "ProductionVariants": [{"VariantName": "Prod", "ModelName": str(good)}],
        "ShadowProductionVariants": [{"VariantName": "Shadow", "ModelName": str(broken)}],
        "ShadowSamplingPercentage": 100,
    }
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/api/v1/endpoint-configs", json=config).status_code == 201
        client.post(
            "/api/v1/endpoints", json={"EndpointName": "ep", "EndpointConfigName": "with-shadow"}
        )
        for event in events:
            answer = client.post("/endpoints/ep/invocations", content=orjson.dumps(event))
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-amzn-invoked-production-variant"] == "Prod"
        sidecars = workspace.endpoints.sidecars("ep")
        assert sidecars is not None and sidecars.shadow is not None
        sidecars.shadow.drain()
        shadow = client.get("/api/v1/endpoints/ep").json()["ShadowProductionVariants"][0]
        exposition = client.get("/metrics").text
    assert (
        f'shipyard_shadow_requests_total{{endpoint="ep",outcome="error",variant="Shadow"}} '
        f"{float(len(events))}" in exposition
    )
    assert shadow["VariantName"] == "Shadow"
    assert shadow["Sent"] == len(events)
    assert shadow["Errors"] == len(events) and shadow["Succeeded"] == 0
    assert "injected fault" in shadow["LastError"]
    # The production variant's metrics hold only its own answers: no shadow error in them.
    totals = {s.variant: s for s in workspace.metrics.snapshot() if s.endpoint == "ep"}
    assert set(totals) == {"Prod"} and totals["Prod"].errors_5xx == 0


def test_full_shadow_queue_drops_copies_without_waiting(
    workspace: Workspace, trained: TrainResult
) -> None:
    from shipyard.core.package import load_package
    from shipyard.serve.shadow import ShadowVariant

    ref = register(workspace, trained.contents)
    info = workspace.registry.get_version(ref)
    model = load_package(workspace.store, info.artifact_uri, info.sha256)
    release = __import__("threading").Event()

    def stuck(columns: dict[str, str]):  # type: ignore[no-untyped-def]
        release.wait(10)
        raise ValueError("never decoded")

    shadow = ShadowVariant("ep", "Shadow", ref, model, sampling_percentage=100, queue_size=2)
    results = [shadow.offer(stuck) for _ in range(10)]
    release.set()
    shadow.drain()
    shadow.close()
    # One copy is being scored, two wait in the queue, the rest are dropped and counted.
    assert results.count(True) in (2, 3)
    assert shadow.stats.dropped == results.count(False)
    assert shadow.stats.errors == results.count(True)
