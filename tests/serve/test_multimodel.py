"""Multi-model endpoints over real HTTP: load on first call, LRU eviction, unknown targets."""

from __future__ import annotations

import httpx
import orjson

from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.pipeline.packages import publish_package
from shipyard.train import TrainResult
from tests.serve.conftest import register


def test_models_load_on_first_call_and_evict_lru(
    workspace: Workspace, trained: TrainResult
) -> None:
    for _ in range(3):
        register(workspace, trained.contents)
    event = _event(trained)
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        made = _create_mme(client, "fraud", MaxModels=2)
        assert made.json()["MultiModelConfig"]["LoadedModels"] == []

        for target in ("fraud/1", "fraud/2", "fraud@1", "3"):
            answer = _invoke(client, event, target)
            assert answer.status_code == 200, answer.text
        assert answer.headers["X-Shipyard-Model-Version"] == "fraud@3"
        state = client.get("/api/v1/endpoints/mme").json()["MultiModelConfig"]
        # 1 and 2 loaded, 1 used again (2 is now least recent), 3 loaded: 2 goes.
        assert state["LoadedModels"] == ["fraud@1", "fraud@3"]
        assert state["Evicted"] == ["fraud@2"]
        assert (state["Loads"], state["CacheHits"]) == (3, 1)

        unknown = _invoke(client, event, "fraud/9")
        assert unknown.status_code == 400
        assert unknown.headers["x-amzn-ErrorType"] == "ValidationError"
        assert "no target model 'fraud/9'" in unknown.json()["Message"]
        assert _invoke(client, event, "other/1").status_code == 400
        missing = client.post("/endpoints/mme/invocations", content=event)
        assert missing.status_code == 400 and "X-Amzn-SageMaker-Target-Model" in missing.text


def test_byte_bound_evicts(workspace: Workspace, trained: TrainResult) -> None:
    for _ in range(2):
        register(workspace, trained.contents)
    from shipyard.serve import MultiModelConfig
    from shipyard.serve.multimodel import MultiModelCache

    size = len(trained.contents.model_bytes)
    cache = MultiModelCache(
        "mme", MultiModelConfig("fraud", max_models=10, max_bytes=size + 1),
        workspace.store, workspace.registry,
    )  # fmt: skip
    cache.get("1")
    cache.get("2")
    assert cache.loaded == ["fraud@2"] and cache.stats.evictions == ["fraud@1"]


def test_tampered_target_model_is_a_model_error(workspace: Workspace, trained: TrainResult) -> None:
    good = register(workspace, trained.contents)
    stored = workspace.registry.get_version(good)
    workspace.registry.register(
        "fraud", artifact_uri=stored.artifact_uri, sha256="0" * 64, framework="xgboost",
        framework_version="x", signature={}, metrics={}, params={}, lineage={},
    )  # fmt: skip
    event = _event(trained)
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        _create_mme(client, "fraud")
        bad = _invoke(client, event, "2")
        assert bad.status_code == 424 and "sha256" in bad.json()["OriginalMessage"]
        good_answer = _invoke(client, event, "1")
        assert good_answer.status_code == 200


def test_prefix_serves_every_group_under_it(workspace: Workspace, trained: TrainResult) -> None:
    for group in ("fraud-eu", "fraud-us", "fraud-us", "other"):
        publish_package(workspace, group, trained.contents)
    event = _event(trained)
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as client:
        _create_mme(client, "fraud-*", MaxModels=2)

        for target, version in (
            ("fraud-eu/1", "fraud-eu@1"), ("fraud-us/1", "fraud-us@1"),
            ("fraud-eu@1", "fraud-eu@1"), ("fraud-us/2.tar.gz", "fraud-us@2"),
        ):  # fmt: skip
            answer = _invoke(client, event, target)
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Shipyard-Model-Version"] == version
        score = answer.json()["predictions"][0]["fraud_probability"]
        assert abs(score - trained.holdout_scores[0]) < 1e-6
        state = client.get("/api/v1/endpoints/mme").json()["MultiModelConfig"]
        # One LRU across the groups: fraud-us@1 was least recently used when us@2 arrived.
        assert state["LoadedModels"] == ["fraud-eu@1", "fraud-us@2"]
        assert state["Evicted"] == ["fraud-us@1"]
        for outside in ("other/1", "1", "fraud-*/1", "fraud-eu/x"):
            refused = _invoke(client, event, outside)
            assert refused.status_code == 400, outside
            assert "fraud-" in refused.json()["Message"]
        assert "no version 9" in _invoke(client, event, "fraud-eu/9").json()["Message"]
        missing = client.post("/endpoints/mme/invocations", content=event)
        assert missing.status_code == 400 and "fraud-GROUP/1" in missing.text


def _event(trained: TrainResult) -> bytes:
    return orjson.dumps(trained.holdout_events.head(1).drop("is_fraud").to_dicts()[0])


def _create_mme(client: httpx.Client, group: str, **limits: int) -> httpx.Response:
    """Endpoint 'mme', multi-model over ``group`` (a name or a prefix ending in '*')."""
    config = {
        "EndpointConfigName": "mme",
        "ProductionVariants": [{"VariantName": "AllTraffic"}],
        "MultiModelConfig": {"ModelPackageGroupName": group, **limits},
    }
    created = client.post("/api/v1/endpoint-configs", json=config)
    assert created.status_code == 201, created.text
    return client.post(
        "/api/v1/endpoints", json={"EndpointName": "mme", "EndpointConfigName": "mme"}
    )


def _invoke(client: httpx.Client, event: bytes, target: str) -> httpx.Response:
    return client.post(
        "/endpoints/mme/invocations",
        content=event,
        headers={"X-Amzn-SageMaker-Target-Model": target},
    )
