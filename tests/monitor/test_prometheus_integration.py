"""At scale, Prometheus does the watching: a real Prometheus scrapes the server, evaluates the
rules `shipyard monitor prometheus-rules` wrote, and a real Alertmanager calls the server's
webhook, which rolls the faulty version back."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import yaml

from shipyard.cli.main import main
from shipyard.core.config import Settings
from shipyard.monitor import AlarmSpec, alertmanager_config, prometheus_rules
from shipyard.pipeline import BackgroundServer, Workspace, error_rate_alarm
from shipyard.registry import REJECTED
from shipyard.serve import VariantSpec
from shipyard.storage import list_events
from shipyard.train import TrainResult
from tests.monitor.prometheus_stack import (
    Process,
    binaries,
    start_alertmanager,
    start_prometheus,
)
from tests.serve.conftest import faulty, register

pytestmark = pytest.mark.slow


def _csv_rows(result: TrainResult, count: int = 50) -> list[bytes]:
    """One CSV request body per holdout event, in the model's input order."""
    holdout = result.holdout_events.head(count)
    if holdout.schema.get("event_time") == pl.Datetime:
        holdout = holdout.with_columns(pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
    signature = list(result.contents.prep.input_types)
    return [
        row.write_csv(include_header=False).encode()
        for row in holdout.select(signature).iter_slices(1)
    ]


class Traffic:
    """Invokes the endpoint from a thread until stopped; counts the answers by status."""

    def __init__(self, url: str, bodies: list[bytes]) -> None:
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, bodies), daemon=True)

    def _run(self, url: str, bodies: list[bytes]) -> None:
        with httpx.Client(timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                answer = client.post(
                    f"{url}/endpoints/fraud/invocations",
                    content=bodies[i % len(bodies)],
                    headers={"Content-Type": "text/csv"},
                )
                self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
                i += 1
                time.sleep(0.01)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@pytest.fixture
def stack_binaries() -> dict[str, str]:
    return binaries()


def _cli(*args: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code in (0, None), f"shipyard {' '.join(args)} failed"


def test_an_alertmanager_alert_rolls_the_endpoint_back(
    settings: Settings,
    trained: TrainResult,
    tmp_path: Path,
    stack_binaries: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workspace = Workspace.open(settings)
    processes: list[Process] = []
    try:
        good = register(workspace, trained.contents)
        bad = register(workspace, faulty(trained.contents, 0.5))
        workspace.registry.promote("fraud", good.version, "production")
        workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", good)])
        # Prometheus watches here: the server's own default guard must not act first.
        quiet = dataclasses.replace(error_rate_alarm("fraud"), actions_enabled=False)
        workspace.alarms.put(quiet, persist=True)
        with BackgroundServer(workspace) as server:
            workspace.alarms.stop()  # only Prometheus evaluates in this test
            alarms = tmp_path / "alarms.yaml"
            alarms.write_text(
                yaml.safe_dump(
                    [
                        {
                            "name": "fraud-errors",
                            "endpoint": "fraud",
                            "metric": "Invocation5XXErrors",
                            "statistic": "Average",
                            "period": 1,
                            "evaluation_periods": 2,
                            "threshold": 0.05,
                            "actions": ["rollback"],
                        },
                    ]  # fmt: skip
                )
            )
            rules, routing = tmp_path / "rules.yml", tmp_path / "alertmanager.yml"
            monkeypatch.setenv("COLUMNS", "200")
            _cli("alarms", "apply", str(alarms), "--url", server.url)
            _cli(
                "monitor", "prometheus-rules", "--url", server.url, "--alarm", "fraud-errors",
                "--scrape-interval", "1", "--out", str(rules),
            )  # fmt: skip
            checked = subprocess.run(
                [stack_binaries["promtool"], "check", "rules", str(rules)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert checked.returncode == 0, checked.stdout + checked.stderr
            config = alertmanager_config(
                f"{server.url}/api/v1/alertmanager", group_wait_s=0, group_interval_s=1
            )
            routing.write_text(yaml.safe_dump(config))
            manager, manager_address = start_alertmanager(
                stack_binaries["alertmanager"], tmp_path / "am", config
            )
            processes.append(manager)
            prometheus, prometheus_address = start_prometheus(
                stack_binaries["prometheus"], tmp_path / "prom",
                target=f"{server.host}:{server.port}", alertmanager=manager_address, rules=rules,
            )  # fmt: skip
            processes.append(prometheus)
            with Traffic(server.url, _csv_rows(trained)) as traffic:
                _wait_for_scrapes(prometheus_address, f"{server.host}:{server.port}")
                workspace.registry.promote("fraud", bad.version, "production")
                fault_at = time.time()
                workspace.endpoints.route_all("fraud", bad, actor="ops", reason="ship v2")
                rolled_back_at = _wait_for(
                    lambda: workspace.endpoints.serving_versions("fraud")["AllTraffic"] == good,
                    timeout_s=90,
                    failing=lambda: _diagnose(prometheus, manager, prometheus_address),
                )
                time.sleep(1.0)
            assert traffic.statuses.get(200, 0) > 0 and traffic.statuses.get(424, 0) > 0
    finally:
        for process in processes:
            process.stop()
        workspace.close()

    print(
        f"fault -> rollback through Prometheus and Alertmanager: {rolled_back_at - fault_at:.1f} s"
    )
    assert workspace.registry.alias_version("fraud", "production") == good.version
    assert workspace.registry.get("fraud", bad.version).approval_status == REJECTED
    [rollback] = [
        e for e in list_events(workspace.meta, entity_id="fraud") if e["action"] == "rollback"
    ]
    assert (rollback["from_state"], rollback["to_state"]) == (str(bad), str(good))
    assert rollback["actor"] == "alertmanager (ShipyardFraudErrors)"
    assert rollback["details"]["trigger"] == "alertmanager ShipyardFraudErrors"
    received = list_events(workspace.meta, entity_kind="alertmanager")
    assert received[0]["action"] == "firing"
    assert received[0]["details"]["labels"]["action"] == "rollback"
    assert received[0]["reason"] == f"rolled back fraud: {bad} -> {good}"


def _wait_for_scrapes(prometheus: str, target: str, timeout_s: float = 30) -> None:
    def scraped() -> bool:
        answer = httpx.get(
            f"http://{prometheus}/api/v1/query",
            params={"query": f'shipyard_invocations_total{{instance="{target}"}}'},
        ).json()
        return bool(answer["data"]["result"])

    _wait_for(scraped, timeout_s=timeout_s, failing=lambda: "Prometheus never scraped Shipyard")


def _wait_for(condition: Any, *, timeout_s: float, failing: Any) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return time.time()
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s:.0f} s: {failing()}")


def _diagnose(prometheus: Process, manager: Process, address: str) -> str:
    alerts = httpx.get(f"http://{address}/api/v1/alerts").text
    return f"alerts {alerts}; prometheus: {prometheus.tail(5)}; alertmanager: {manager.tail(5)}"


# The rules' PromQL, checked by Prometheus' own rule test runner -------------------------------


def test_generated_rules_fire_as_the_alarms_would(
    tmp_path: Path, stack_binaries: dict[str, str]
) -> None:
    errors = AlarmSpec(
        name="fraud-errors", metric="Invocation5XXErrors", endpoint="fraud", threshold=0.05,
        period_s=60, evaluation_periods=2, actions=("rollback",),
    )  # fmt: skip
    latency = AlarmSpec(
        name="fraud-p99", metric="ModelLatency", statistic="p99", endpoint="fraud",
        threshold=150_000, period_s=60, evaluation_periods=2, min_requests=100,
    )  # fmt: skip
    document, skipped = prometheus_rules([errors, latency], scrape_interval_s=15)
    assert skipped == []
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(document))
    by_name = {r["alert"]: r for r in document["groups"][0]["rules"]}
    key = 'endpoint="fraud",variant="AllTraffic"'

    def expected(alert: str) -> list[dict[str, Any]]:
        rule = by_name[alert]
        return [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]

    def case(
        invocations: str, errors_5xx: str, faster_than_100ms: str, alerts: dict[str, bool]
    ) -> dict[str, Any]:
        series = {
            f"shipyard_invocations_total{{{key}}}": invocations,
            f'shipyard_invocation_errors_total{{{key},code="5xx"}}': errors_5xx,
            f'shipyard_model_latency_seconds_bucket{{{key},le="0.1"}}': faster_than_100ms,
            f'shipyard_model_latency_seconds_bucket{{{key},le="0.25"}}': invocations,
            f'shipyard_model_latency_seconds_bucket{{{key},le="+Inf"}}': invocations,
        }
        return {
            "interval": "15s",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [
                {
                    "eval_time": "8m",
                    "alertname": name,
                    "exp_alerts": expected(name) if fires else [],
                }
                for name, fires in alerts.items()
            ],  # fmt: skip
        }

    # 4 requests a second, 10 % errors, every request slower than 100 ms: both fire.
    busy = case(
        "0+60x40", "0+6x40", "0x40", {"ShipyardFraudErrors": True, "ShipyardFraudP99": True}
    )
    # 1 request a second (60 a period, under min_requests=100), 1 % errors, just as slow:
    # the error rate is under its threshold and the latency alarm has too little traffic.
    quiet = case(
        "0+15x40", "0+0.15x40", "0x40", {"ShipyardFraudErrors": False, "ShipyardFraudP99": False}
    )
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": [busy, quiet]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    run = subprocess.run(
        [stack_binaries["promtool"], "test", "rules", "tests.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
