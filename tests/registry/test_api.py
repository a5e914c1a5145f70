"""The registry's HTTP API on the registry alone (deployments are in test_deployment.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from shipyard.registry import ModelRegistry, RegistryActions, create_registry_routes
from shipyard.storage import MetadataStore

API = "/api/v1/models"


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(MetadataStore(f"sqlite:///{tmp_path / 'r.db'}"))
    for _ in range(3):
        registry.register(
            "fraud-detector", artifact_uri="file:///m/package.json", sha256="ab" * 32,
            framework="xgboost", framework_version="3.2.0",
            signature={"inputs": [{"name": "amount", "type": "float"}]},
            metrics={"auc_pr": 0.25}, params={"max_depth": 6},
            lineage={"datasets": ["ds-1"], "training_job": "job-1"},
        )  # fmt: skip
    return registry


class Client:
    """A synchronous in-process HTTP client of an ASGI app (no sockets)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.request(method, path, **kwargs)

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture
def client(registry: ModelRegistry) -> Client:
    return Client(Starlette(routes=create_registry_routes(registry, RegistryActions(registry))))


def test_reads_groups_versions_aliases_and_history(client: Client) -> None:
    client.post(f"{API}/fraud-detector/versions/2/approve", json={"actor": "alice"})
    client.post(f"{API}/fraud-detector/versions/2/promote", json={"stage": "Production"})
    groups = client.get(API).json()["ModelPackageGroups"]
    assert groups == [
        {
            "ModelPackageGroupName": "fraud-detector",
            "CreationTime": groups[0]["CreationTime"],
            "VersionCount": 3,
            "LatestVersion": 3,
            "Aliases": {"production": 2},
        }
    ]
    group = client.get(f"{API}/fraud-detector").json()
    assert [v["ModelApprovalStatus"] for v in group["Versions"]] == [
        "PendingManualApproval", "Approved", "PendingManualApproval"
    ]  # fmt: skip
    by_alias = client.get(f"{API}/fraud-detector/versions/production").json()
    by_number = client.get(f"{API}/fraud-detector/versions/2").json()
    assert by_alias == by_number
    assert by_number["ModelRef"] == "fraud-detector@2"
    assert by_number["Lineage"] == {"datasets": ["ds-1"], "training_job": "job-1"}
    assert by_number["InputSignature"]["inputs"][0]["name"] == "amount"
    history = client.get(f"{API}/fraud-detector/versions/2/history").json()["History"]
    assert [(h["Action"], h["To"], h["Actor"]) for h in history] == [
        ("register", "PendingManualApproval", "system"),
        ("approval", "Approved", "alice"),
        ("move", "2", "api"),
    ]
    assert len(client.get(f"{API}/fraud-detector/history").json()["History"]) == 5


def test_approve_reject_and_promote_answer_what_changed(client: Client) -> None:
    approved = client.post(
        f"{API}/fraud-detector/versions/1/approve", json={"actor": "alice", "reason": "ok"}
    )
    assert approved.status_code == 200
    assert approved.json()["PreviousApprovalStatus"] == "PendingManualApproval"
    assert approved.json()["ModelVersion"]["ModelApprovalStatus"] == "Approved"
    promoted = client.post(f"{API}/fraud-detector/versions/1/promote", json={"alias": "staging"})
    assert promoted.json()["AliasMoves"] == [{"Alias": "staging", "From": None, "To": 1}]
    again = client.post(f"{API}/fraud-detector/versions/1/promote", json={"alias": "Staging"})
    assert again.json()["Changed"] is False
    rejected = client.post(f"{API}/fraud-detector/versions/1/reject", json={"reason": "leak"})
    assert rejected.json()["ModelVersion"]["ModelApprovalStatus"] == "Rejected"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "kind", "message"),
    [
        ("GET", "/nope", None, 404, "ResourceNotFound", "no model package group 'nope'"),
        ("GET", "/fraud-detector/versions/9", None, 404, "ResourceNotFound",
         "no version fraud-detector@9 in the registry; known versions: 1-3"),
        ("GET", "/fraud-detector/versions/champion", None, 404, "ResourceNotFound",
         "fraud-detector has no alias 'champion'"),
        ("GET", "/bad_name", None, 400, "ValidationException", "name 'bad_name' is not allowed"),
        ("GET", "/..%2Fetc/versions/1", None, 404, "ResourceNotFound", "no registry route"),
        ("GET", "/fraud-detector/versions/a%5Cb", None, 400, "ValidationException",
         "alias name 'a\\\\b' is not allowed"),
        ("POST", "/fraud-detector/versions/x/approve", {}, 400, "ValidationException",
         "version 'x' is not a whole number"),
        ("POST", "/fraud-detector/versions/0/approve", {}, 400, "ValidationException",
         "version '0' is not a whole number"),
        ("GET", "/fraud-detector/versions/99999999999999999999", None, 400,
         "ValidationException", "is not a whole number from 1 to 2147483647"),
        ("GET", "/fraud-detector/versions/2147483648/history", None, 400,
         "ValidationException", "is not a whole number from 1 to 2147483647"),
        ("POST", "/fraud-detector/versions/1/approve", {"deploy": 3}, 400,
         "ValidationException", "field 'deploy' must be a str, got int"),
        ("POST", "/fraud-detector/versions/1/approve", {"colour": "red"}, 400,
         "ValidationException", "unknown field 'colour'"),
        ("POST", "/fraud-detector/versions/1/approve", [1], 400, "ValidationException",
         "must be a JSON object"),
        ("POST", "/fraud-detector/versions/1/approve", {"actor": "x" * 200}, 400,
         "ValidationException", "actor"),
        ("POST", "/fraud-detector/versions/1/approve", {"deploy": "fraud"}, 400,
         "ValidationException", "not wired to any endpoints"),
        ("POST", "/fraud-detector/versions/1/promote", {"stage": "Production"}, 409,
         "ConflictException", "only an Approved version can be production"),
        ("POST", "/fraud-detector/versions/1/promote", {"stage": "Archived"}, 400,
         "ValidationException", "stage 'Archived' is not one of"),
        ("POST", "/fraud-detector/versions/1/promote", {}, 400, "ValidationException",
         "name exactly one of alias"),
        ("POST", "/fraud-detector/versions/9/reject", {}, 404, "ResourceNotFound",
         "no version fraud-detector@9"),
        ("DELETE", "/fraud-detector", None, 405, "MethodNotAllowed", "accepts GET only"),
    ],
)  # fmt: skip
def test_bad_requests_get_one_json_error_and_change_nothing(
    client: Client,
    registry: ModelRegistry,
    method: str,
    path: str,
    body: object,
    status: int,
    kind: str,
    message: str,
) -> None:
    before = registry.history("fraud-detector")
    response = client.request(method, API + path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["__type"] == kind
    assert message in response.json()["message"]
    assert registry.history("fraud-detector") == before


def test_a_body_that_is_not_json_is_refused(client: Client) -> None:
    response = client.post(
        f"{API}/fraud-detector/versions/1/approve",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "the body is not JSON" in response.json()["message"]
    huge = client.post(f"{API}/fraud-detector/versions/1/approve", content=b"x" * 70_000)
    assert huge.status_code == 400 and "larger than" in huge.json()["message"]
