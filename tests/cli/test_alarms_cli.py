"""`shipyard alarms …`, `shipyard endpoints rollback|history` and `shipyard monitor
prometheus-rules`, on the home directly and through a running server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from shipyard.cli.main import main
from shipyard.core.config import Settings
from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult
from tests.serve.conftest import register

ALARMS = """
alarms:
  - name: fraud-errors
    endpoint: fraud
    metric: Invocation5XXErrors
    statistic: Average
    period: 1
    evaluation_periods: 3
    datapoints_to_alarm: 2
    threshold: 0.05
    treat_missing_data: notBreaching
    actions: [rollback]
  - name: fraud-p99-latency
    endpoint: fraud
    metric: ModelLatency
    statistic: p99
    period: 10
    evaluation_periods: 3
    threshold: 150000
    min_requests: 20
"""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trained: TrainResult) -> Iterator[Path]:
    """A home whose endpoint 'fraud' serves fraud@2, fraud@1 Approved before it."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_PORT", str(_closed_port()))  # no server: act on the home
    monkeypatch.setenv("COLUMNS", "250")
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL", "HOST"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    workspace = Workspace.open(Settings(home=home))
    v1, v2 = register(workspace, trained.contents), register(workspace, trained.contents)
    workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v1)])
    workspace.endpoints.route_all("fraud", v2, actor="ops", reason="ship v2")
    workspace.close()
    yield home


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_apply_list_describe_set_state_history_delete(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alarms.yaml"
    path.write_text(ALARMS)
    code, out, _ = _run(capsys, "alarms", "apply", str(path), "--actor", "ops")
    assert code == 0
    assert out.splitlines() == [
        "fraud-errors: Average of Invocation5XXErrors on fraud > 0.05 in 2 of 3 x 1 s "
        "(INSUFFICIENT_DATA)",
        "fraud-p99-latency: p99 of ModelLatency on fraud > 150000 in 3 of 3 x 10 s "
        "(INSUFFICIENT_DATA)",
    ]
    code, out, _ = _run(capsys, "alarms", "list")
    assert code == 0 and "fraud-errors" in out and "fraud-p99-latency" in out
    code, out, _ = _run(capsys, "alarms", "describe", "fraud-p99-latency")
    assert code == 0 and "min requests" in out and "20" in out

    code, out, _ = _run(capsys, "alarms", "set-state", "fraud-errors", "ALARM", "--reason", "drill")
    assert (code, out.strip()) == (0, "fraud-errors: set ALARM")
    workspace = Workspace.open(Settings(home=home))
    try:  # the alarm's action rolled the endpoint back, on the home's database
        assert workspace.endpoints.serving_versions("fraud") == {"AllTraffic": ModelRef("fraud", 1)}
    finally:
        workspace.close()
    code, out, _ = _run(capsys, "alarms", "history", "fraud-errors")
    assert code == 0
    for expected in ("ConfigurationUpdate", "StateUpdate", "rollback fraud: fraud@2 -> fraud@1"):
        assert expected in out
    code, out, _ = _run(capsys, "alarms", "delete", "fraud-errors")
    assert (code, out.strip()) == (0, "fraud-errors: deleted")
    code, _, err = _run(capsys, "alarms", "describe", "fraud-errors")
    assert code == 1
    assert err.strip() == (
        "shipyard: alarm 'fraud-errors' does not exist; alarms: fraud-p99-latency"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alarms:\n  - name: a\n    endpoint: e\n", "alarm 'a' needs metric, threshold"),
        ("alarms: [", "line"),
        ("- {name: a, endpoint: e, metric: m, threshold: 1, period: ten}\n", "'period' must"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_1(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "alarms.yaml"
    path.write_text(text)
    code, out, err = _run(capsys, "alarms", "apply", str(path))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_endpoints_rollback_and_history(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "endpoints", "rollback", "fraud", "--from", "fraud@2")
    assert code == 0 and out.startswith("fraud: rolled back fraud@2 -> fraud@1 in ")
    code, out, _ = _run(capsys, "endpoints", "rollback", "fraud", "--from", "fraud@2")
    assert code == 0 and out.startswith("fraud: nothing to do: fraud@2 no longer serves fraud")
    code, _, err = _run(capsys, "endpoints", "rollback", "fraud")
    assert code == 1 and "no Approved version of fraud older than fraud@1" in err
    code, _, err = _run(capsys, "endpoints", "rollback", "nope")
    assert code == 1 and "endpoint 'nope' does not exist" in err
    code, out, _ = _run(capsys, "endpoints", "history", "fraud", "--changes-only")
    assert code == 0
    rows = [line for line in out.splitlines() if "fraud@" in line]
    assert [("fraud@1 100%" in r, "fraud@2 100%" in r) for r in rows] == [
        (True, False), (False, True), (True, False),
    ]  # fmt: skip
    assert "ship v2" in rows[1] and "rollback from fraud@2 to fraud@1 (manual)" in rows[2]


def test_prometheus_rules_from_the_alarms(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alarms.yaml"
    path.write_text(ALARMS)
    _run(capsys, "alarms", "apply", str(path))
    rules, routing = tmp_path / "rules.yml", tmp_path / "alertmanager.yml"
    code, _, err = _run(
        capsys, "monitor", "prometheus-rules", "--out", str(rules), "--scrape-interval", "1",
        "--alertmanager-out", str(routing), "--webhook-url", "http://127.0.0.1:9/api/v1/alertmanager",
    )  # fmt: skip
    assert code == 0 and f"wrote {rules}: 2 rule(s)" in err
    document = yaml.safe_load(rules.read_text())
    names = [r["alert"] for r in document["groups"][0]["rules"]]
    assert names == ["ShipyardFraudErrors", "ShipyardFraudP99Latency"]
    webhook = yaml.safe_load(routing.read_text())["receivers"][0]["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:9/api/v1/alertmanager"
    code, out, _ = _run(capsys, "monitor", "prometheus-rules", "--alarm", "fraud-errors")
    assert code == 0 and yaml.safe_load(out)["groups"][0]["rules"][0]["for"] == "3s"
    code, _, err = _run(capsys, "monitor", "prometheus-rules", "--alarm", "nope")
    assert code == 1 and "no alarm nope; alarms: fraud-errors, fraud-p99-latency" in err


def test_through_a_running_server(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "alarms.yaml"
    path.write_text(ALARMS)
    workspace = Workspace.open(Settings(home=home))
    try:
        with BackgroundServer(workspace) as server:
            code, _, _ = _run(capsys, "alarms", "apply", str(path), "--url", server.url)
            assert code == 0
            # The server loaded its default guard too, and shows both kinds.
            code, out, _ = _run(capsys, "alarms", "list", "--url", server.url)
            assert "fraud-model-error-rate" in out and "default" in out and "api" in out
            code, out, _ = _run(capsys, "endpoints", "rollback", "fraud", "--url", server.url)
            assert code == 0 and "fraud@2 -> fraud@1" in out
            assert workspace.endpoints.runtime("fraud").variants[0].ref == ModelRef("fraud", 1)
    finally:
        workspace.close()
    code, _, err = _run(capsys, "alarms", "list", "--url", f"http://127.0.0.1:{_closed_port()}")
    assert code == 2 and "no Shipyard server answers" in err
