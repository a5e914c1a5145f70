"""Monitoring schedules inside the server: captured traffic -> drift job -> metric -> alarm."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest
from typer.testing import CliRunner

from shipyard.cli.main import app, main
from shipyard.core.config import Settings
from shipyard.core.types import ModelRef
from shipyard.monitor import ALARM, AlarmSpec, MonitoringSchedule
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.scenarios.fraud import FraudScenario
from shipyard.serve import DataCaptureConfig, EndpointConfig, VariantSpec
from shipyard.train import TrainResult
from tests.serve.conftest import register

DRIFTED = ("amount", "merchant_category", "channel", "device_trust_score")


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    opened = Workspace.open(settings)
    yield opened
    opened.close()


def _events(scenario: FraudScenario, rows: int) -> pl.DataFrame:
    frame = pl.from_arrow(scenario.generate(rows).events)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _schedule(baseline: Path) -> dict[str, object]:
    return {
        "monitoring_type": "DataDrift",
        "schedule_expression": "cron(0 * ? * * *)",
        "current": "capture:fraud",
        "baseline": str(baseline),
        "endpoint": "fraud",
        "columns": list(DRIFTED),
    }


def test_a_drift_verdict_from_captured_traffic_raises_an_alarm_that_rolls_back(
    workspace: Workspace, trained: TrainResult, tmp_path: Path
) -> None:
    register(workspace, trained.contents)
    v2 = register(workspace, trained.contents)
    config = EndpointConfig(
        "fraud-captured",
        (VariantSpec("AllTraffic", v2),),
        data_capture=DataCaptureConfig(100.0, json_content_types=("application/json",)),
    )
    workspace.endpoints.create_endpoint_config(config)
    workspace.endpoints.create_endpoint("fraud", config_name=config.name)
    baseline = tmp_path / "baseline.parquet"
    _events(FraudScenario(seed=3), 4000).write_parquet(baseline)
    drift = {"amount": 3.0, "merchant_category": 4.0, "channel": 4.0, "device_trust_score": 0.5}
    shifted = _events(FraudScenario(seed=5, drift=drift), 1000)
    alarm = {
        "metric": "monitor_violations", "endpoint": "fraud", "statistic": "Maximum",
        "threshold": 0, "period": 1, "evaluation_periods": 1,
        "treat_missing_data": "notBreaching", "actions": ["rollback"],
    }  # fmt: skip
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as http:
        for start in range(0, shifted.height, 100):
            body = orjson.dumps(shifted.slice(start, 100).to_dicts())
            answer = http.post("/endpoints/fraud/invocations", content=body)
            assert answer.status_code == 200, answer.text
        workspace.endpoints.capture.flush()
        assert http.put("/api/v1/alarms/fraud-drift", json=alarm).status_code == 200
        created = http.put("/api/v1/monitoring-schedules/fraud-drift", json=_schedule(baseline))
        assert created.status_code == 200, created.text
        assert http.put(
            "/api/v1/monitoring-schedules/fraud-drift", json=_schedule(baseline)
        ).status_code == 409  # fmt: skip

        execution = http.post("/api/v1/monitoring-schedules/fraud-drift/run", timeout=60).json()
        assert execution["status"] == "CompletedWithViolations", execution
        assert set(execution["summary"]["drifted"]) == set(DRIFTED)
        assert execution["summary"]["current_rows"] == 1000
        assert Path(execution["report_uri"].removeprefix("file://")).exists()

        points = http.get(
            "/api/v1/metrics",
            params={"endpoint": "fraud", "metric": "monitor_violations", "period": "1",
                    "stat": "Maximum", "start": str(time.time() - 60), "end": str(time.time() + 5)},
        ).json()["Datapoints"]  # fmt: skip
        assert [p["Maximum"] for p in points] == [len(DRIFTED)]
        deadline = time.monotonic() + 15
        while workspace.endpoints.serving_versions("fraud") != {"AllTraffic": ModelRef("fraud", 1)}:
            assert time.monotonic() < deadline, "the drift alarm did not roll back"
            time.sleep(0.05)
        history = http.get("/api/v1/alarms/fraud-drift/history").json()["AlarmHistoryItems"]
        assert any(i["HistoryData"]["newState"] == ALARM for i in history)
        listed = http.get("/api/v1/monitoring-schedules").json()["MonitoringSchedules"]
        assert [s["last_execution"]["run_id"] for s in listed] == [execution["run_id"]]

        # The CLI acts through the server, so its run's metrics land where the alarms look.
        ran = CliRunner().invoke(
            app, ["monitor", "schedules", "run-now", "fraud-drift", "--url", server.url]
        )
        assert ran.exit_code == 1 and "CompletedWithViolations" in ran.stdout, ran.output
        assert len(workspace.monitoring.executions("fraud-drift")) == 2


def test_schedule_requests_with_bad_fields_get_one_line_4xx(
    workspace: Workspace, tmp_path: Path
) -> None:
    with BackgroundServer(workspace) as server, httpx.Client(base_url=server.url) as http:
        good = _schedule(tmp_path / "baseline.parquet")
        cases = {
            "missing": {k: v for k, v in good.items() if k != "current"},
            "unknown": {**good, "colour": "red"},
            "typed": {**good, "threshold": "high"},
            "columns": {**good, "columns": "amount"},
            "type": {**good, "monitoring_type": "Vibes"},
            "cron": {**good, "schedule_expression": "cron(0 */6 ? * * *)"},
        }
        for case, body in cases.items():
            answer = http.put(f"/api/v1/monitoring-schedules/{case}", json=body)
            assert answer.status_code == 400, (case, answer.text)
            assert "\n" not in answer.json()["message"]
        assert http.put("/api/v1/monitoring-schedules/x", content=b"[1]").status_code == 400
        missing = http.post("/api/v1/monitoring-schedules/nope/run")
        assert missing.status_code == 404 and "nope" in missing.json()["message"]


def test_the_default_monitor_pipeline_runs_the_endpoints_schedules(
    workspace: Workspace, tmp_path: Path
) -> None:
    reference, current = tmp_path / "reference.parquet", tmp_path / "current.parquet"
    _events(FraudScenario(seed=3), 2000).write_parquet(reference)
    _events(FraudScenario(seed=4, drift={"amount": 3.0}), 2000).write_parquet(current)
    workspace.monitoring.create(
        MonitoringSchedule(
            "fraud-amount",
            "DataDrift",
            "cron(0 * ? * * *)",
            str(current),
            str(reference),
            endpoint="fraud",
            columns=("amount",),
        )  # fmt: skip
    )
    for name, endpoint in (("fraud-check", "fraud"), ("other-check", "other")):
        spec = AlarmSpec(name, "Invocation5XXErrors", endpoint, 0.05, actions=("pipeline:monitor",))
        workspace.alarms.put(workspace.actions.check(spec))
        workspace.alarms.set_state(name, ALARM, reason="test")
    assert workspace.actions.flush(timeout_s=60)

    executions = workspace.monitoring.executions("fraud-amount")
    assert [e.status for e in executions] == ["CompletedWithViolations"]
    assert executions[0].summary["drifted"] == ["amount"]
    done = [e["reason"] for e in workspace.alarms.events("fraud-check") if e["action"] == "action"]
    failed = [
        e["reason"] for e in workspace.alarms.events("other-check") if e["action"] == "action"
    ]
    assert done == ["pipeline monitor ran"]
    assert len(failed) == 1 and "no monitoring schedule reports on endpoint 'other'" in failed[0]
    points = workspace.metrics.datapoints(
        "feature_baseline_drift_amount", ["Maximum"], endpoint="fraud", variant=None, period_s=60,
        start_s=time.time() - 120, end_s=time.time() + 60,
    )  # fmt: skip
    assert points and points[-1].values["Maximum"] > 0.1


def test_an_alarm_file_can_start_the_monitor_pipeline_out_of_the_box(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "reference.parquet"
    _events(FraudScenario(seed=3), 1000).write_parquet(reference)
    workspace.monitoring.create(
        MonitoringSchedule(
            "fraud-self",
            "DataDrift",
            "cron(0 * ? * * *)",
            str(reference),
            str(reference),
            endpoint="fraud",
            columns=("amount",),
        )  # fmt: skip
    )
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    alarm = "alarms:\n  - {name: fraud-errors, endpoint: fraud, metric: Invocation5XXErrors, "
    good.write_text(alarm + "threshold: 0.05, actions: ['pipeline:monitor']}\n")
    bad.write_text(alarm + "threshold: 0.05, actions: ['pipeline:retrain']}\n")
    with BackgroundServer(workspace) as server:
        for path, expected in ((good, 0), (bad, 1)):
            with pytest.raises(SystemExit) as exited:
                main(["alarms", "apply", str(path), "--url", server.url])
            assert exited.value.code == expected
        assert "no pipeline action 'retrain'; pipelines: monitor" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(
                [
                    "alarms",
                    "set-state",
                    "fraud-errors",
                    "ALARM",
                    "--reason",
                    "t",
                    "--url",
                    server.url,
                ]
            )
        assert workspace.actions.flush(timeout_s=60)
    executions = workspace.monitoring.executions("fraud-self")
    assert [e.status for e in executions] == ["Completed"]  # the data against itself: no drift
