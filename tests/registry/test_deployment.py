"""Deployment triggered by the registry, against a real endpoint served in-process.

Approving with a deploy target switches the endpoint and makes the version production;
rejecting the version an endpoint serves redeploys the newest version still Approved.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import orjson
import pytest

from shipyard.core.config import Settings
from shipyard.core.errors import IntegrityError, NotFoundError, StateError
from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.pipeline.deployment import Deployments
from shipyard.registry import APPROVED, PENDING, PRODUCTION, REJECTED
from shipyard.serve import IN_SERVICE, UPDATING, VariantSpec
from shipyard.serve.deployment_config import deployment_from_document
from shipyard.storage import list_events
from shipyard.train import TrainResult
from tests.serve.conftest import register

API = "/api/v1/models/fraud/versions"


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    opened = Workspace.open(settings)
    yield opened
    opened.close()


@pytest.fixture
def serving_v1(workspace: Workspace, trained: TrainResult) -> Workspace:
    """Endpoint 'fraud' serves fraud@1, Approved and production; fraud@2 is Pending."""
    v1 = register(workspace, trained.contents)
    workspace.registry.promote("fraud", v1.version, PRODUCTION, actor="test")
    workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v1)])
    register(workspace, trained.contents, approve=False)
    return workspace


def _served_by(url: str, trained: TrainResult) -> str:
    event = trained.holdout_events.head(1).drop("is_fraud").to_dicts()[0]
    answer = httpx.post(f"{url}/endpoints/fraud/invocations", content=orjson.dumps(event))
    assert answer.status_code == 200, answer.text
    return answer.headers["X-Shipyard-Model-Version"]


def test_approval_deploys_and_rejection_redeploys_over_http(
    serving_v1: Workspace, trained: TrainResult
) -> None:
    registry = serving_v1.registry
    with BackgroundServer(serving_v1) as server:
        assert _served_by(server.url, trained) == "fraud@1"
        approved = httpx.post(
            f"{server.url}{API}/2/approve",
            json={"actor": "alice", "reason": "AUC-PR up 4 %", "deploy": "fraud"},
            timeout=60,
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["Redeployments"] == [
            {"EndpointName": "fraud", "From": ["fraud@1"], "To": "fraud@2"}
        ]
        assert approved.json()["AliasMoves"] == [{"Alias": "production", "From": 1, "To": 2}]
        assert _served_by(server.url, trained) == "fraud@2"

        rejected = httpx.post(
            f"{server.url}{API}/2/reject", json={"actor": "bob", "reason": "recall fell"}
        )
        assert rejected.status_code == 200, rejected.text
        assert rejected.json()["Redeployments"] == [
            {"EndpointName": "fraud", "From": ["fraud@2"], "To": "fraud@1"}
        ]
        assert _served_by(server.url, trained) == "fraud@1"
    assert registry.get("fraud", 2).approval_status == REJECTED
    assert registry.alias_version("fraud", PRODUCTION) == 1
    moves = [(e.from_state, e.to_state, e.actor) for e in registry.history("fraud", 2)]
    assert moves == [
        (None, PENDING, "system"),
        (PENDING, APPROVED, "alice"),
        ("1", "2", "alice"),
        (APPROVED, REJECTED, "bob"),
        ("2", "1", "bob"),  # production handed back in the rejection's transaction
    ]


def test_rejecting_a_served_version_picks_the_newest_still_approved(
    serving_v1: Workspace, trained: TrainResult
) -> None:
    v3 = register(serving_v1, trained.contents)  # Approved, never deployed
    deployments = Deployments(serving_v1.registry, serving_v1.endpoints)
    outcome = deployments.reject("fraud", 1, actor="carol", reason="leaky feature")
    assert [(r.from_refs, r.to_ref) for r in outcome.redeployments] == [
        ((ModelRef("fraud", 1),), v3)
    ]
    assert serving_v1.endpoints.serving_versions("fraud") == {"AllTraffic": v3}
    assert serving_v1.registry.alias_version("fraud", PRODUCTION) == 3


def test_a_package_that_does_not_load_leaves_the_registry_untouched(
    serving_v1: Workspace, trained: TrainResult
) -> None:
    bad = serving_v1.registry.register("fraud", **{**_fields(serving_v1, 2), "sha256": "00" * 32})
    deployments = Deployments(serving_v1.registry, serving_v1.endpoints)
    before = serving_v1.registry.history("fraud")
    with pytest.raises(IntegrityError):
        deployments.approve("fraud", bad.version, actor="alice", reason="", deploy_to="fraud")
    assert serving_v1.registry.history("fraud") == before
    assert serving_v1.registry.get("fraud", bad.version).approval_status == PENDING
    assert serving_v1.endpoints.serving_versions("fraud") == {"AllTraffic": ModelRef("fraud", 1)}


def test_an_approval_refused_after_the_switch_switches_back(
    serving_v1: Workspace, trained: TrainResult
) -> None:
    # A real database refusal between switching the endpoint and committing the approval.
    with serving_v1.meta.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER freeze BEFORE UPDATE OF approval_status ON model_versions "
            "BEGIN SELECT RAISE(ABORT, 'approvals are frozen'); END"
        )
    deployments = Deployments(serving_v1.registry, serving_v1.endpoints)
    with BackgroundServer(serving_v1) as server:
        with pytest.raises(StateError, match="approvals are frozen"):
            deployments.approve("fraud", 2, actor="alice", reason="", deploy_to="fraud")
        assert _served_by(server.url, trained) == "fraud@1"
    assert serving_v1.registry.get("fraud", 2).approval_status == PENDING
    assert serving_v1.registry.alias_version("fraud", PRODUCTION) == 1


def test_refusals_write_nothing(serving_v1: Workspace) -> None:
    deployments = Deployments(serving_v1.registry, serving_v1.endpoints)
    before = serving_v1.registry.history("fraud")
    with pytest.raises(StateError, match="fraud serves fraud@1 and no other version"):
        deployments.reject("fraud", 1, actor="bob", reason="")
    with pytest.raises(NotFoundError, match="endpoint 'nope' does not exist"):
        deployments.approve("fraud", 2, actor="bob", reason="", deploy_to="nope")
    with pytest.raises(
        StateError,
        match="fraud@2 is PendingManualApproval; only an Approved version can be production",
    ):
        deployments.promote("fraud", 2, "production", actor="bob", reason="", deploy_to="fraud")
    assert serving_v1.registry.history("fraud") == before
    assert serving_v1.endpoints.serving_versions("fraud") == {"AllTraffic": ModelRef("fraud", 1)}


def _fields(workspace: Workspace, version: int) -> dict[str, object]:
    v = workspace.registry.get("fraud", version)
    return {
        "artifact_uri": v.artifact_uri, "sha256": v.sha256, "framework": v.framework,
        "framework_version": v.framework_version, "signature": v.signature,
        "metrics": v.metrics, "params": v.params, "lineage": v.lineage,
    }  # fmt: skip


def _start_canary(workspace: Workspace, green: ModelRef) -> None:
    """A CANARY deployment of ``green`` on 'fraud' that bakes long enough to act on."""
    endpoints = workspace.endpoints
    config = endpoints.describe_endpoint_config(endpoints.describe("fraud").config_name)
    variants = (VariantSpec("AllTraffic", green),)
    endpoints.create_endpoint_config(replace(config, name="fraud-green", variants=variants))
    policy = {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            "WaitIntervalInSeconds": 30,
        },
        "MaximumExecutionTimeoutInSeconds": 60,
    }
    deployment = deployment_from_document({"BlueGreenUpdatePolicy": policy})
    endpoints.update_endpoint("fraud", config_name="fraud-green", deployment=deployment)


def test_rejecting_a_deployments_new_fleet_rolls_it_back_and_its_old_fleet_is_refused(
    serving_v1: Workspace, trained: TrainResult
) -> None:
    serving_v1.registry.approve("fraud", 2, actor="alice")
    _start_canary(serving_v1, ModelRef("fraud", 2))
    assert serving_v1.endpoints.describe("fraud").status == UPDATING
    with BackgroundServer(serving_v1) as server:
        refused = httpx.post(f"{server.url}{API}/1/reject", json={"actor": "bob", "reason": ""})
        assert refused.status_code == 409, refused.text
        assert "its old fleet serves fraud@1" in refused.json()["message"]
        assert serving_v1.registry.get("fraud", 1).approval_status == APPROVED
        rejected = httpx.post(
            f"{server.url}{API}/2/reject", json={"actor": "bob", "reason": "recall fell"}
        )
        assert rejected.status_code == 200, rejected.text
        assert rejected.json()["Redeployments"] == [
            {"EndpointName": "fraud", "From": ["fraud@1", "fraud@2"], "To": "fraud@1"}
        ]
        described = serving_v1.endpoints.describe("fraud")
        assert described.status == IN_SERVICE
        assert serving_v1.endpoints.serving_versions("fraud") == {
            "AllTraffic": ModelRef("fraud", 1)
        }
        assert _served_by(server.url, trained) == "fraud@1"
    assert serving_v1.registry.get("fraud", 2).approval_status == REJECTED
    assert serving_v1.registry.alias_version("fraud", PRODUCTION) == 1
    events = list_events(serving_v1.meta, entity_kind="endpoint", entity_id="fraud")
    rollback = [e for e in events if e["action"] == "rollback"]
    assert len(rollback) == 1 and rollback[0]["details"]["trigger"] == "registry-reject"
    assert "fraud@2 rejected: recall fell" in rollback[0]["reason"]
    assert rollback[0]["actor"] == "bob"
