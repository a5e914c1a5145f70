"""SIGKILL a real `shipyard server` in the middle of a canary and restart it: the endpoint is
consistent throughout (one committed split, weight on at least one fleet) and the guardrail
resumes the deployment to its end."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from shipyard.core.config import Settings
from shipyard.pipeline import Workspace
from shipyard.serve import VariantSpec
from shipyard.storage import list_events
from shipyard.train import TrainResult
from tests.serve.conftest import register
from tests.server_process import free_port, start_server


def _kill(server: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server with its inference workers (its whole process group)."""
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=10)


def _serving(home: Path) -> tuple[str, dict[str, float]]:
    """The endpoint's status and committed split, read from the metadata (server down or up)."""
    workspace = Workspace.open(Settings(home=home))
    try:
        described = workspace.endpoints.describe("fraud")
        return described.status, {
            str(v.model): v.weight for v in described.variants if v.weight > 0
        }
    finally:
        workspace.close()


@pytest.mark.slow
def test_a_server_killed_during_a_canary_resumes_it_consistently(
    tmp_path: Path, trained: TrainResult
) -> None:
    home = tmp_path / "home"
    workspace = Workspace.open(Settings(home=home))
    v1 = register(workspace, trained.contents)
    v2 = register(workspace, trained.contents)
    workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v1)])
    workspace.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    port, log = free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    body = orjson.dumps(trained.holdout_events.head(3).drop("is_fraud").to_dicts())

    server = start_server(env, port, log, own_group=True)
    try:
        config = {
            "EndpointConfigName": "fraud-v2",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": str(v2)}],
        }
        assert httpx.post(f"{url}/api/v1/endpoint-configs", json=config).status_code == 201
        deployment = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY", "WaitIntervalInSeconds": 1.5,
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                },
                "MaximumExecutionTimeoutInSeconds": 120,
            },
            "MinimumRequestsPerStep": 0,
        }  # fmt: skip
        answer = httpx.put(
            f"{url}/api/v1/endpoints/fraud",
            json={"EndpointConfigName": "fraud-v2", "DeploymentConfig": deployment},
        )
        assert answer.status_code == 200, answer.text
        _kill(server)
        killed_at = time.time()

        status, split = _serving(home)  # what a restarted server will load
        assert status == "Updating" and split == {"fraud@1": 0.75, "fraud@2": 0.25}

        server = start_server(env, port, log, own_group=True)
        seen: list[dict[str, float]] = []
        deadline = time.monotonic() + 30
        while True:
            invoked = httpx.post(
                f"{url}/endpoints/fraud/invocations",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert invoked.status_code == 200, invoked.text
            described = httpx.get(f"{url}/api/v1/endpoints/fraud").json()
            weights = {
                v["ModelPackage"]: v["CurrentWeight"] for v in described["ProductionVariants"]
            }
            assert sum(weights.values()) > 0  # never neither fleet
            seen.append(weights)
            if described["EndpointStatus"] == "InService":
                break
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        assert weights == {str(v2): 1.0}
    finally:
        _kill(server)
    workspace = Workspace.open(Settings(home=home))
    try:
        events = list_events(workspace.meta, entity_kind="endpoint", entity_id="fraud")
    finally:
        workspace.close()
    actions = [e["action"] for e in events]
    assert actions[-4:] == [
        "guardrail-pass", "deployment-shift", "guardrail-pass", "deployment-complete"
    ]  # fmt: skip
    # Resumed, not restarted: one first step before the kill, the rest after the restart.
    assert actions.count("deployment-start") == 1 and actions.count("deployment-shift") == 2
    assert all(float(e["at_epoch_s"]) > killed_at for e in events[-4:])
