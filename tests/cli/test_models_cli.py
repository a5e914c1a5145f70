"""`shipyard models …` on the home directly, and through a running server with --url."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import orjson
import pytest

from shipyard.cli.main import main
from shipyard.core.config import Settings
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.registry import PRODUCTION
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult
from tests.serve.conftest import register


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    # Nothing listens on the configured port, so the commands open the home directly.
    monkeypatch.setenv("SHIPYARD_PORT", str(_closed_port()))
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL", "HOST"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    workspace = Workspace.open(Settings(home=home))
    for _ in range(2):
        workspace.registry.register(
            "fraud", artifact_uri="file:///m/package.json", sha256="ab" * 32,
            framework="xgboost", framework_version="3.2.0",
            signature={"inputs": [{"name": "amount", "type": "float"}]},
            metrics={"auc_pr": 0.2512}, params={"max_depth": 6},
            lineage={"datasets": ["ds-1"], "training_job": "job-9"}, actor="trainer",
        )  # fmt: skip
    workspace.close()
    return home


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_list_show_approve_promote_history(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "list")
    assert code == 0 and "fraud" in out and "2" in out
    code, out, _ = _run(capsys, "models", "list", "fraud")
    assert code == 0 and out.count("PendingManualApproval") == 2 and "auc_pr 0.2512" in out
    code, out, _ = _run(capsys, "models", "show", "fraud", "1")
    assert code == 0
    for expected in ("file:///m/package.json", "ab" * 32, "xgboost 3.2.0", "1: amount", "job-9"):
        assert expected in out

    code, out, _ = _run(
        capsys, "models", "approve", "fraud", "1", "--reason", "good [metrics]", "--actor", "al"
    )
    assert (code, out.strip()) == (0, "fraud@1: PendingManualApproval -> Approved")
    code, out, _ = _run(capsys, "models", "promote", "fraud", "1", "--stage", "Production")
    assert (code, out.strip()) == (0, "fraud@1: Approved; production: - -> 1")
    code, out, _ = _run(capsys, "models", "promote", "fraud", "1", "--alias", "production")
    assert out.strip() == "fraud@1: Approved; nothing to change"
    code, out, _ = _run(capsys, "models", "show", "fraud", "production")
    assert code == 0 and "fraud@1" in out

    code, out, _ = _run(capsys, "models", "history", "fraud", "1")
    assert code == 0
    lines = [line for line in out.splitlines() if "fraud" in line and "│" in line]
    assert ["register" in lines[0], "approval" in lines[1], "move" in lines[2]] == [True] * 3
    assert "al" in lines[1] and "good [metrics]" in lines[1]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "nope", "1"], 1, "no model package group 'nope' in the registry; groups: fraud"),
        (["show", "fraud", "7"], 1, "no version fraud@7 in the registry; known versions: 1-2"),
        (["show", "../etc", "1"], 1, "model package group name '../etc' is not allowed"),
        (["approve", "fraud", "x"], 2, "Invalid value for 'version'"),
        (["promote", "fraud", "2", "--stage", "Production"], 1,
         "fraud@2 is PendingManualApproval; only an Approved version can be production"),
        (["promote", "fraud", "1"], 2, "give exactly one of --alias or --stage"),
        (["promote", "fraud", "1", "--stage", "Archived"], 1, "stage 'Archived' is not one of"),
        (["approve", "fraud", "1", "--deploy", "nope"], 1, "endpoint 'nope' does not exist"),
        (["reject", "fraud", "1", "--actor", "x" * 200], 1, "must be 1-128 characters"),
    ],
)  # fmt: skip
def test_errors_are_one_line_with_an_exit_code(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    got, _, err = _run(capsys, "models", *args)
    assert got == code, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err
    # nothing was written by a refused command
    _, out, _ = _run(capsys, "models", "history", "fraud")
    assert out.count("register") == 2 and "approval" not in out


def test_a_named_server_that_does_not_answer_is_a_usage_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code, _, err = _run(capsys, "models", "list", "--url", url)
    assert code == 2
    assert err.startswith(f"shipyard: no Shipyard server answers at {url}")


def test_approve_with_deploy_through_the_server(
    settings: Settings, trained: TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = Workspace.open(settings)
    try:
        v1 = register(workspace, trained.contents)
        workspace.registry.promote("fraud", 1, PRODUCTION, actor="test")
        workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v1)])
        register(workspace, trained.contents, approve=False)
        with BackgroundServer(workspace) as server:
            code, out, err = _run(
                capsys, "models", "approve", "fraud", "2", "--deploy", "fraud", "--url", server.url
            )
            assert code == 0, err
            assert out.strip() == (
                "fraud@2: PendingManualApproval -> Approved; production: 1 -> 2; "
                "endpoint fraud: fraud@1 -> fraud@2"
            )
            event = trained.holdout_events.head(1).drop("is_fraud").to_dicts()[0]
            answer = httpx.post(
                f"{server.url}/endpoints/fraud/invocations", content=orjson.dumps(event)
            )
            assert answer.headers["X-Shipyard-Model-Version"] == "fraud@2"
    finally:
        workspace.close()
