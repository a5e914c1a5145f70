"""The evaluation gate: approval refuses a candidate worse than production on the same holdout."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from starlette.applications import Starlette

from shipyard.cli.main import main
from shipyard.core.config import Settings
from shipyard.pipeline import Workspace
from shipyard.pipeline.deployment import registry_routes
from shipyard.pipeline.gate import EvaluationGate, MetricCheck, Tolerance
from shipyard.pipeline.training import run_training
from shipyard.registry import APPROVED, PENDING, PRODUCTION
from shipyard.scenarios.fraud import GeneratedEvents
from shipyard.train import COMPLETED, TrainSpec

APPROVE = "/api/v1/models/fraud/versions/{}/approve"


class Client:
    """The registry routes in-process, as `shipyard server` mounts them."""

    def __init__(self, workspace: Workspace) -> None:
        self.app = Starlette(routes=registry_routes(workspace))

    def post(self, path: str, json: dict[str, Any]) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.post(path, json=json)

        return asyncio.run(call())


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory, fraud_events: GeneratedEvents) -> Path:
    """fraud@1 production; fraud@2 a model that cannot split (worse); fraud@3 = fraud@1's spec."""
    root = tmp_path_factory.mktemp("gate")
    for name, table in (("events", fraud_events.events), ("labels", fraud_events.labels)):
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame.write_parquet(root / f"{name}.parquet")
    good = TrainSpec(
        dataset=str(root / "events.parquet"), labels=str(root / "labels.parquet"),
        output_group="fraud", num_rounds=10, threads=2, seed=5,
        hyperparameters={"max_depth": 4},
    )  # fmt: skip
    bad = TrainSpec(
        **{**good.__dict__, "num_rounds": 2, "hyperparameters": {"min_child_weight": 1e6}}
    )
    workspace = Workspace.open(Settings(home=root / "home"))
    try:
        for spec in (good, bad, good):
            assert run_training(workspace, spec).status == COMPLETED
        workspace.registry.update_approval(
            "fraud", 1, APPROVED, actor="al", reason="first model", alias=PRODUCTION
        )
    finally:
        workspace.close()
    shutil.copytree(root / "home", root / "snapshot")
    return root / "home"


@pytest.fixture
def workspace(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    # Each test starts from the trained home, at the same path (package URIs are absolute).
    home = trained_home
    shutil.rmtree(home)
    shutil.copytree(home.with_name("snapshot"), home)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    with socket.socket() as probe:  # nothing listens there: the CLI opens the home itself
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("SHIPYARD_PORT", str(probe.getsockname()[1]))
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL", "HOST"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    opened = Workspace.open(Settings(home=home))
    yield opened
    opened.close()


def test_approval_refuses_a_worse_candidate_saying_by_how_much(workspace: Workspace) -> None:
    client = Client(workspace)

    refused = client.post(APPROVE.format(2), json={"actor": "bo", "reason": "ship it"})
    assert refused.status_code == 409
    message = refused.json()["message"]
    production = workspace.registry.get("fraud", 1).metrics["auc_pr"]
    assert f"vs production {production:.3f}: " in message
    assert "AUC-PR 0." in message and "worse, tolerance 0.01" in message
    candidate = workspace.registry.get("fraud", 2)
    assert candidate.approval_status == PENDING
    # The evaluation is kept with the version and in the audit log, refused or not.
    assert candidate.metrics["gate_production_auc_pr"] == pytest.approx(production)
    assert candidate.metrics["gate_auc_pr"] < production - 0.01
    event = workspace.registry.history("fraud", 2)[-1]
    assert (event.action, event.to_state, event.actor) == ("evaluation", "refused", "bo")
    assert event.details["production"] == "fraud@1" and not event.details["passed"]

    no_reason = client.post(APPROVE.format(2), json={"skip_gate": True})
    assert no_reason.status_code == 400 and "needs a reason" in no_reason.json()["message"]
    skipped = client.post(APPROVE.format(2), json={"skip_gate": True, "reason": "known gap"})
    assert skipped.status_code == 200
    assert workspace.registry.get("fraud", 2).approval_status == APPROVED
    events = workspace.registry.history("fraud", 2)
    assert (events[-2].action, events[-2].to_state) == ("evaluation", "skipped")
    assert "known gap" in events[-2].reason


def test_a_candidate_as_good_as_production_passes_on_identical_rows(
    workspace: Workspace,
) -> None:
    report = EvaluationGate(workspace).evaluate("fraud", 3)
    assert report is not None and report.passed
    v1, v3 = workspace.registry.get("fraud", 1), workspace.registry.get("fraud", 3)
    # The rebuilt holdout is the one each job scored: same rows, same metrics as registered.
    assert report.holdout_rows == v3.metrics["holdout_rows"] == v1.metrics["holdout_rows"]
    for name in ("auc_pr", "auc_roc", "brier"):
        assert report.candidate_metrics[name] == pytest.approx(v3.metrics[name], abs=1e-9)
        assert report.production_metrics[name] == pytest.approx(v1.metrics[name], abs=1e-9)

    client = Client(workspace)
    approved = client.post(APPROVE.format(3), json={"actor": "bo"})
    assert approved.status_code == 200, approved.text
    v3 = workspace.registry.get("fraud", 3)
    assert v3.approval_status == APPROVED and "gate_auc_roc" in v3.metrics
    assert workspace.registry.history("fraud", 3)[-2].to_state == "passed"
    # Production itself, or a group without production, has nothing to be compared with.
    assert EvaluationGate(workspace).evaluate("fraud", 1) is None


def test_the_cli_refuses_in_one_line_and_skip_needs_a_reason(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.close()
    for args, code in (
        (["models", "approve", "fraud", "2"], 1),
        (["models", "approve", "fraud", "2", "--skip-gate"], 2),
    ):
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == code
    err = capsys.readouterr().err
    assert "cannot approve: evaluation gate refused for fraud@2 against production fraud@1" in err
    assert "AUC-PR" in err and "Traceback" not in err
    assert "--skip-gate needs --reason" in err


def test_tolerances_read_as_documented() -> None:
    check = MetricCheck("auc_pr", 0.512, 0.585, 0.585 - 0.512, 0.01)
    assert check.describe() == "AUC-PR 0.512 vs production 0.585: 0.073 worse, tolerance 0.01"
    assert not check.passed
    assert Tolerance(0.01, 0.02).allowed(0.9) == pytest.approx(0.018)  # relative is larger
    assert Tolerance(0.01, 0.02).allowed(0.2) == 0.01
    better = MetricCheck("brier", 0.004, 0.005, -0.001, 0.001)
    assert better.passed and "0.001 better" in better.describe()
