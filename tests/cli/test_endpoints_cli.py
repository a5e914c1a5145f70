"""`shipyard endpoints create|update|describe|list|delete`, in-process and through --url."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest

from shipyard.cli.main import main
from shipyard.core.config import Settings
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.train import TrainResult
from tests.serve.conftest import register


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: TrainResult) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("SHIPYARD_PORT", str(probe.getsockname()[1]))
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL", "HOST"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    workspace = Workspace.open(Settings(home=home))
    register(workspace, trained.contents)
    register(workspace, trained.contents)
    workspace.close()
    return home


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_endpoint_commands_in_process(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "endpoints", "create", "ep", "--variant", "A=fraud@1:1:2",
        "--shadow", "S=fraud@2", "--shadow-percent", "50", "--capture-percent", "10",
    )  # fmt: skip
    assert code == 0, err
    assert "ep: InService" in out and "A: fraud@1 weight 1, 2 instance(s)" in out
    assert "shadow S: fraud@2 (50 % of requests)" in out and "capture: Started at 10 %" in out
    code, out, err = _run(
        capsys, "endpoints", "update", "ep", "--variant", "A=fraud@1:1", "--variant", "B=fraud@2:3"
    )
    assert code == 0, err
    assert "B: fraud@2 weight 3" in out and "shadow" not in out
    code, out, _ = _run(capsys, "endpoints", "list")
    assert code == 0 and "A=fraud@1:1, B=fraud@2:3" in out
    code, out, _ = _run(capsys, "endpoints", "describe", "ep", "--json")
    assert code == 0 and orjson.loads(out)["EndpointStatus"] == "InService"
    code, out, _ = _run(capsys, "endpoints", "delete", "ep")
    assert code == 0 and "ep: deleted" in out
    code, _, err = _run(capsys, "endpoints", "describe", "ep")
    assert code == 1 and err.startswith("shipyard: endpoint 'ep' does not exist")
    assert len(err.strip().splitlines()) == 1


def test_bad_input_is_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, words in (
        (("create", "ep"), "give --model"),
        (("create", "ep", "--variant", "fraud@1"), "NAME=GROUP@N"),
        (("create", "ep", "--model", "fraud"), "GROUP@VERSION"),
        (("create", "ep", "--model", "fraud@9"), "9"),
        (("update", "nope", "--model", "fraud@1"), "'nope'"),
        (("delete", "nope"), "'nope'"),
    ):
        code, _, err = _run(capsys, "endpoints", *args)
        assert code == 1, (args, err)
        assert err.startswith("shipyard: ") and words in err, (args, err)
        assert len(err.strip().splitlines()) == 1


def test_create_through_a_running_server(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace = Workspace.open(Settings(home=home))
    try:
        with BackgroundServer(workspace) as server:
            code, out, err = _run(
                capsys, "endpoints", "create", "live", "--model", "fraud@2", "--url", server.url
            )
            assert code == 0, err
            # The running server itself serves it: no restart needed.
            assert "live" in workspace.endpoints.serving
    finally:
        workspace.close()
