"""Blue/green deployments with guardrails, on a real server under client load."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import orjson
import polars as pl
import pytest

from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.registry import REJECTED
from shipyard.serve import IN_SERVICE, UPDATING, VariantSpec
from shipyard.serve.deployment_config import deployment_from_document
from shipyard.serve.endpoint_rows import write_status
from shipyard.storage import list_events
from shipyard.train import TrainResult, TrainSpec, train_xgboost
from tests.serve.conftest import faulty, register

ALARM = "fraud-model-error-rate"  # the server's default guard of every endpoint


def _deployment(
    kind: str = "CANARY",
    size: int = 50,
    *,
    wait: float = 1.0,
    termination: float = 0.0,
    timeout: float = 30.0,
    alarms: tuple[str, ...] = (ALARM,),
    min_requests: int = 5,
    drift: float | None = None,
) -> dict[str, Any]:
    routing: dict[str, Any] = {"Type": kind, "WaitIntervalInSeconds": wait}
    if kind == "CANARY":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": size}
    if kind == "LINEAR":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": size}
    doc: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": termination,
            "MaximumExecutionTimeoutInSeconds": timeout,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]},
        "MinimumRequestsPerStep": min_requests,
    }
    if drift is not None:
        doc["PredictionDriftCheck"] = {"Statistic": "jensen_shannon", "Threshold": drift}
    return doc


def _update(server: BackgroundServer, ref: ModelRef, deployment: dict[str, Any]) -> httpx.Response:
    name = f"fraud-v{ref.version}-{time.time_ns()}"
    config = {
        "EndpointConfigName": name,
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": str(ref)}],
    }
    created = httpx.post(f"{server.url}/api/v1/endpoint-configs", json=config)
    assert created.status_code == 201, created.text
    return httpx.put(
        f"{server.url}/api/v1/endpoints/fraud",
        json={"EndpointConfigName": name, "DeploymentConfig": deployment},
    )


def _wait_for(
    check: Callable[[], bool], timeout_s: float = 20.0, workspace: Workspace | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            events = [] if workspace is None else _history(workspace)
            raise AssertionError(
                "timed out; events: " + "\n".join(f"{e['action']}: {e['reason']}" for e in events)
            )
        time.sleep(0.05)


def _describe(server: BackgroundServer) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{server.url}/api/v1/endpoints/fraud").json()
    return answer


def _settled(server: BackgroundServer) -> bool:
    return _describe(server)["EndpointStatus"] == IN_SERVICE


def _rolled_back(server: BackgroundServer, workspace: Workspace) -> dict[str, Any]:
    """The rollback controller's record, once the endpoint is back in service. The controller
    records it just after the status changes, so InService alone may come before it."""

    def rollbacks() -> list[dict[str, Any]]:
        return [e for e in _history(workspace) if e["action"] == "rollback"]

    _wait_for(lambda: _settled(server) and bool(rollbacks()), workspace=workspace)
    return rollbacks()[-1]


@contextmanager
def _load(
    server: BackgroundServer, trained: TrainResult, threads: int = 4
) -> Iterator[list[tuple[int, str, str]]]:
    """Clients invoking the endpoint back to back; yields (status, variant, body) per call."""
    body = orjson.dumps(trained.holdout_events.head(5).drop("is_fraud").to_dicts())
    seen: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                answer = http.post(
                    f"{server.url}/endpoints/fraud/invocations",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                variant = answer.headers.get("X-Amzn-Invoked-Production-Variant", "")
                seen.append((answer.status_code, variant, answer.text[:200]))

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield seen
    finally:
        stop.set()
        for worker in workers:
            worker.join()


def _history(workspace: Workspace) -> list[dict[str, Any]]:
    return list_events(workspace.meta, entity_kind="endpoint", entity_id="fraud")


def _shares(workspace: Workspace) -> list[list[tuple[str, float]]]:
    """The traffic split each shift or rollback put in force, oldest first."""
    splits = []
    for event in _history(workspace):
        variants = (event["details"] or {}).get("variants")
        if event["action"].startswith("deployment-") and variants:
            total = sum(v["weight"] for v in variants)
            splits.append([(f"{v['group']}@{v['version']}", v["weight"] / total) for v in variants])
    return splits


def test_canary_promotes_a_healthy_version_and_no_request_fails(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    v2 = register(deployed, trained.contents)
    with _load(server, trained) as seen:
        answer = _update(server, v2, _deployment(termination=0.5, drift=0.3))
        assert answer.status_code == 200, answer.text
        pending = answer.json()["PendingDeploymentSummary"]
        assert answer.json()["EndpointStatus"] == UPDATING and pending["NewFleetShare"] == 0.5
        _wait_for(lambda: _settled(server), workspace=deployed)
        time.sleep(0.3)  # requests after the old fleet retired
    statuses = Counter(status for status, _, _ in seen)
    assert statuses == {200: len(seen)}, [answer for answer in seen if answer[0] != 200][:3]
    assert len(seen) > 50
    described = _describe(server)
    assert [v["ModelPackage"] for v in described["ProductionVariants"]] == [str(v2)]
    assert "PendingDeploymentSummary" not in described
    assert _shares(deployed) == [
        [("fraud@1", 0.5), ("fraud@2", 0.5)],
        [("fraud@1", 0.0), ("fraud@2", 1.0)],
        [("fraud@2", 1.0)],
    ]
    actions = [e["action"] for e in _history(deployed)]
    assert actions.count("guardrail-pass") == 2 and actions[-1] == "deployment-complete"
    passed = [e["reason"] for e in _history(deployed) if e["action"] == "guardrail-pass"]
    assert "prediction drift jensen_shannon" in passed[0]
    assert deployed.registry.get_version(v2).approval_status != REJECTED


def test_canary_of_a_faulty_version_rolls_back_on_its_alarm_under_load(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    bad = register(deployed, faulty(trained.contents, 0.5))
    with _load(server, trained) as seen:
        answer = _update(server, bad, _deployment(wait=10.0))
        assert answer.status_code == 200, answer.text
        _rolled_back(server, deployed)
        rolled_back_at = len(seen)
        time.sleep(0.5)
    described = _describe(server)
    assert [v["ModelPackage"] for v in described["ProductionVariants"]] == ["fraud@1"]
    failed = [(status, text) for status, _, text in seen if status != 200]
    assert failed, "the faulty canary never failed a request"
    # Every failure is the faulty model's own injected fault: none comes from the shift.
    assert all(status == 424 and "injected fault" in text for status, text in failed), failed[:3]
    assert all(status == 200 for status, _, _ in seen[rolled_back_at + 20 :])
    assert deployed.registry.get_version(bad).approval_status == REJECTED
    rollbacks = [e for e in _history(deployed) if e["action"] == "rollback"]
    assert len(rollbacks) == 1 and "old fleet fraud@1" in rollbacks[0]["reason"]
    assert _shares(deployed)[-1] == [("fraud@1", 1.0)]


def test_linear_steps_through_each_share(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    v2 = register(deployed, trained.contents)
    answer = _update(server, v2, _deployment("LINEAR", 34, wait=0.3, alarms=(), min_requests=0))
    assert answer.status_code == 200, answer.text
    assert answer.json()["PendingDeploymentSummary"]["Steps"] == 3
    _wait_for(lambda: _settled(server), workspace=deployed)
    assert [round(split[-1][1], 2) for split in _shares(deployed)] == [0.34, 0.68, 1.0, 1.0]


def test_low_traffic_is_inconclusive_and_the_timeout_rolls_back(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    v2 = register(deployed, trained.contents)
    answer = _update(server, v2, _deployment(wait=0.3, timeout=2.5, min_requests=50))
    assert answer.status_code == 200, answer.text
    time.sleep(1.0)
    assert _describe(server)["EndpointStatus"] == UPDATING  # still baking step 1
    inconclusive = [e for e in _history(deployed) if e["action"] == "guardrail-inconclusive"]
    assert len(inconclusive) == 1
    assert "inconclusive: the new fleet served 0 of the 50 requests" in inconclusive[0]["reason"]
    rollback = _rolled_back(server, deployed)
    assert [v["ModelPackage"] for v in _describe(server)["ProductionVariants"]] == ["fraud@1"]
    assert "MaximumExecutionTimeoutInSeconds (2.5 s) exceeded" in rollback["reason"]


def test_a_canary_whose_scores_drift_from_the_old_fleets_rolls_back(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    events = trained.holdout_events.head(4000)
    flipped = events.with_columns((1 - pl.col("is_fraud").cast(pl.Int8)).alias("is_fraud"))
    inverted = train_xgboost(flipped, TrainSpec(num_rounds=5, seed=1))
    v2 = register(deployed, inverted.contents)
    with _load(server, trained, threads=3) as seen:
        answer = _update(server, v2, _deployment(wait=1.0, min_requests=20, drift=0.2))
        assert answer.status_code == 200, answer.text
        rollback = _rolled_back(server, deployed)
    assert all(status == 200 for status, _, _ in seen)
    assert "prediction drift jensen_shannon" in rollback["reason"]
    assert "exceeds the threshold" in rollback["reason"]
    assert [v["ModelPackage"] for v in _describe(server)["ProductionVariants"]] == ["fraud@1"]


def test_manual_rollback_during_a_canary_returns_all_traffic_to_the_old_fleet(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    v2 = register(deployed, trained.contents)
    assert _update(server, v2, _deployment(wait=30.0, timeout=60.0, alarms=())).status_code == 200
    blocked = _update(server, v2, _deployment())
    assert blocked.status_code == 409 and "CANARY deployment" in blocked.json()["message"]
    answer = httpx.post(
        f"{server.url}/api/v1/endpoints/fraud/rollback", json={"reason": "not today"}
    )
    assert answer.status_code == 200 and answer.json()["RolledBack"], answer.text
    described = _describe(server)
    assert described["EndpointStatus"] == IN_SERVICE
    assert [v["ModelPackage"] for v in described["ProductionVariants"]] == ["fraud@1"]
    assert deployed.registry.alias_version("fraud", "production") == 1
    again = httpx.post(
        f"{server.url}/api/v1/endpoints/fraud/rollback",
        json={"reason": "again", "from": str(v2)},
    )
    assert again.status_code == 200 and not again.json()["RolledBack"]


BAD_ROUTING = [
    ({"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 60}},
     "CanarySize must be at most 50%"),
    ({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 5}},
     "LinearStepSize must be 10-50%"),
    ({"Type": "SOMETIMES"}, "Type must be one of"),
    ({"Type": "LINEAR"}, "LinearStepSize is required"),
    ({"WaitIntervalInSeconds": -1}, "WaitIntervalInSeconds must be a number"),
    ({"WaitIntervalInSeconds": 60}, "MaximumExecutionTimeoutInSeconds must exceed"),
]  # fmt: skip


def test_a_bad_deployment_config_is_a_400_naming_the_field(
    server: BackgroundServer, deployed: Workspace, trained: TrainResult
) -> None:
    v2 = register(deployed, trained.contents)
    for change, message in BAD_ROUTING:
        doc = _deployment()
        doc["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"].update(change)
        answer = _update(server, v2, doc)
        assert answer.status_code == 400 and message in answer.json()["message"], answer.text
    drift_all_at_once = _deployment("ALL_AT_ONCE", drift=0.1)
    answer = _update(server, v2, drift_all_at_once)
    assert answer.status_code == 400 and "needs CANARY or LINEAR" in answer.json()["message"]
    assert _describe(server)["EndpointStatus"] == IN_SERVICE


@pytest.mark.slow
def test_worker_processes_follow_each_step_without_failing_a_request(
    deployed: Workspace, trained: TrainResult
) -> None:
    v2 = register(deployed, trained.contents)
    with BackgroundServer(deployed, workers=2) as server, _load(server, trained) as seen:
        answer = _update(server, v2, _deployment("LINEAR", 50, wait=1.0))
        assert answer.status_code == 200, answer.text
        _wait_for(lambda: _settled(server), workspace=deployed)
        time.sleep(0.5)
    assert Counter(status for status, _, _ in seen) == {200: len(seen)}
    assert _shares(deployed)[-1] == [("fraud@2", 1.0)]
    assert [e["action"] for e in _history(deployed)].count("guardrail-pass") == 2


@pytest.mark.slow
def test_the_drift_check_judges_scores_served_by_worker_processes(
    deployed: Workspace, trained: TrainResult
) -> None:
    """The workers score, the supervisor's guardrail judges: their scores must reach it."""
    events = trained.holdout_events.head(4000)
    flipped = events.with_columns((1 - pl.col("is_fraud").cast(pl.Int8)).alias("is_fraud"))
    inverted = register(deployed, train_xgboost(flipped, TrainSpec(num_rounds=5, seed=1)).contents)
    v3 = register(deployed, trained.contents)
    with BackgroundServer(deployed, workers=2) as server, _load(server, trained, 3) as seen:
        drifting = _update(server, inverted, _deployment(wait=1.0, min_requests=20, drift=0.2))
        assert drifting.status_code == 200, drifting.text
        rollback = _rolled_back(server, deployed)
        assert "prediction drift jensen_shannon" in rollback["reason"]
        assert "exceeds the threshold" in rollback["reason"]
        healthy = _update(server, v3, _deployment(wait=1.0, min_requests=20, drift=0.3))
        assert healthy.status_code == 200, healthy.text
        _wait_for(lambda: _settled(server), workspace=deployed)
    assert Counter(status for status, _, _ in seen) == {200: len(seen)}
    passed = [e["reason"] for e in _history(deployed) if e["action"] == "guardrail-pass"]
    assert "prediction drift jensen_shannon" in passed[0]
    assert _shares(deployed)[-1] == [("fraud@3", 1.0)]


def test_an_interrupted_rollback_is_finished_on_the_old_fleet(
    deployed: Workspace, trained: TrainResult
) -> None:
    """A server that died between committing RollingBack and the old fleet's config: the next
    one serves the committed split, and its guardrail finishes the rollback."""
    v2 = register(deployed, trained.contents)
    config = deployed.endpoints.describe_endpoint_config(
        deployed.endpoints.describe("fraud").config_name
    )
    green = replace(config, name="fraud-green", variants=(VariantSpec("AllTraffic", v2),))
    deployed.endpoints.create_endpoint_config(green)
    deployed.endpoints.update_endpoint(
        "fraud", config_name="fraud-green",
        deployment=deployment_from_document(_deployment(wait=30.0, timeout=60.0)),
    )  # fmt: skip
    write_status(deployed.meta, "fraud", "RollingBack", reason="crash test", actor="test")
    deployed.endpoints.stop_serving("fraud")  # as a fresh process: nothing loaded
    with BackgroundServer(deployed) as server:
        rollback = _rolled_back(server, deployed)
        described = _describe(server)
    assert [v["ModelPackage"] for v in described["ProductionVariants"]] == ["fraud@1"]
    assert "finishing a rollback interrupted by a restart" in rollback["reason"]
