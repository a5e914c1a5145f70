"""`shipyard endpoints update --deployment ...`, `history` and `rollback` against a server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shipyard.cli.main import main, serving_summary
from shipyard.core.config import Settings
from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import VariantSpec
from shipyard.serve.deployment_config import deployment_from_document
from shipyard.train import TrainResult
from tests.serve.conftest import register


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: TrainResult) -> Workspace:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "250")
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL", "HOST", "PORT"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    opened = Workspace.open(Settings(home=home))
    v1 = register(opened, trained.contents)
    register(opened, trained.contents)
    opened.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v1)])
    return opened


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_a_linear_update_from_the_cli_and_its_history(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    with BackgroundServer(workspace) as server:
        code, out, err = _run(
            capsys, "endpoints", "update", "fraud", "--model", "fraud@2", "--deployment",
            "LINEAR", "--step-percent", "50", "--wait", "0.3", "--min-requests", "0",
            "--url", server.url,
        )  # fmt: skip
        assert code == 0, err
        assert "fraud: Updating" in out and "LINEAR step 1/2, 50% on the new fleet" in out
        deadline = time.monotonic() + 15
        while workspace.endpoints.describe("fraud").status != "InService":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        code, out, err = _run(capsys, "endpoints", "history", "fraud", "--url", server.url)
        assert code == 0, err
        assert "fraud@1 50%, fraud@2 50%" in out and "deployment-complete" in out
        assert "step 2/2 (100%) passed" in out

        code, out, err = _run(
            capsys, "endpoints", "update", "fraud", "--model", "fraud@1", "--deployment",
            "CANARY", "--url", server.url,
        )  # fmt: skip
        assert code == 1 and "needs --step-percent" in err
        code, out, err = _run(
            capsys, "endpoints", "update", "fraud", "--model", "fraud@1", "--deployment",
            "CANARY", "--step-percent", "80", "--url", server.url,
        )  # fmt: skip
        assert code == 1 and "CanarySize must be at most 50%" in err
        assert "Traceback" not in err


def test_the_server_banner_lists_endpoints_mid_deployment_with_their_status(
    workspace: Workspace,
) -> None:
    assert serving_summary([]) == "no endpoints yet"
    endpoints = workspace.endpoints
    v1, v2 = VariantSpec("AllTraffic", ModelRef("fraud", 1)), ModelRef("fraud", 2)
    endpoints.create_endpoint("other", [v1])
    policy = {
        "TrafficRoutingConfiguration": {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            "WaitIntervalInSeconds": 30,
        },
        "MaximumExecutionTimeoutInSeconds": 60,
    }
    endpoints.update_endpoint(
        "fraud", [VariantSpec("AllTraffic", v2)],
        deployment=deployment_from_document({"BlueGreenUpdatePolicy": policy}),
    )  # fmt: skip
    summary = serving_summary(endpoints.list_endpoints())
    assert summary == "fraud (Updating), other (InService)"
