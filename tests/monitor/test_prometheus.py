"""/metrics in Prometheus' naming, and alarms rewritten as alerting rules."""

from __future__ import annotations

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shipyard.core.config import Settings
from shipyard.core.types import Invocation
from shipyard.monitor import AlarmSpec, EndpointMetricsCollector, MetricsStore, prometheus_rules
from shipyard.monitor.prometheus import alert_name, alertmanager_config
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult
from tests.serve.conftest import register


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_exposition_uses_prometheus_names_and_units() -> None:
    store = MetricsStore()
    for status, latency_us in ((200, 4_000.0), (200, 120_000.0), (500, 300_000.0), (400, 50.0)):
        store.record(Invocation("fraud", "AllTraffic", status, latency_us, 10.0, 100.0))
    store.put("feature_baseline_drift_amount", 0.42, endpoint="fraud")
    registry = CollectorRegistry()
    registry.register(EndpointMetricsCollector(store))
    samples = _samples(generate_latest(registry).decode())
    key = (("endpoint", "fraud"), ("variant", "AllTraffic"))
    assert samples[("shipyard_invocations_total", key)] == 4
    assert samples[("shipyard_invocation_errors_total", (("code", "5xx"), *key))] == 1
    assert samples[("shipyard_invocation_errors_total", (("code", "4xx"), *key))] == 1
    bucket = "shipyard_model_latency_seconds_bucket"
    assert samples[(bucket, (*key[:1], ("le", "0.005"), key[1]))] == 2  # 50 us and 4 ms
    assert samples[(bucket, (*key[:1], ("le", "0.15"), key[1]))] == 3
    assert samples[(bucket, (*key[:1], ("le", "+Inf"), key[1]))] == 4
    assert samples[("shipyard_model_latency_seconds_count", key)] == 4
    assert samples[("shipyard_model_latency_seconds_sum", key)] == pytest.approx(0.42405)
    drift = (("endpoint", "fraud"), ("metric", "feature_baseline_drift_amount"), ("variant", ""))
    assert samples[("shipyard_metric_value", drift)] == 0.42


def test_the_server_exposes_endpoint_and_ingest_metrics_together(
    settings: Settings, trained: TrainResult
) -> None:
    workspace = Workspace.open(settings)
    try:
        ref = register(workspace, trained.contents)
        workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", ref)])
        with BackgroundServer(workspace) as server:
            answer = httpx.post(
                f"{server.url}/endpoints/fraud/invocations",
                content=b"not,a,valid,row",
                headers={"Content-Type": "text/csv"},
            )
            assert answer.status_code >= 400
            text = httpx.get(f"{server.url}/metrics").text
    finally:
        workspace.close()
    samples = _samples(text)
    key = (("endpoint", "fraud"), ("variant", "AllTraffic"))
    assert samples[("shipyard_invocations_total", key)] == 1
    errors = [
        samples[("shipyard_invocation_errors_total", (("code", code), *key))]
        for code in ("4xx", "5xx")
    ]
    assert sum(errors) == 1
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"shipyard_ingest_records", "shipyard_drain_records"} <= families  # still there


def _spec(**overrides: object) -> AlarmSpec:
    values: dict[str, object] = {
        "name": "fraud-model-error-rate",
        "metric": "Invocation5XXErrors",
        "endpoint": "fraud",
        "threshold": 0.05,
        "period_s": 10,
        "evaluation_periods": 3,
        "datapoints_to_alarm": 2,
        "actions": ("rollback",),
    }
    values.update(overrides)
    return AlarmSpec(**values)  # type: ignore[arg-type]


def test_an_error_rate_alarm_becomes_a_rule_that_rolls_back() -> None:
    document, skipped = prometheus_rules([_spec()], scrape_interval_s=1)
    assert skipped == []
    [rule] = document["groups"][0]["rules"]
    assert rule["alert"] == "ShipyardFraudModelErrorRate"
    assert rule["expr"] == (
        '(sum(rate(shipyard_invocation_errors_total{endpoint="fraud",code="5xx"}[10s])) / '
        'sum(rate(shipyard_invocations_total{endpoint="fraud"}[10s]))) > 0.05'
    )
    assert rule["for"] == "30s"
    assert rule["labels"] == {
        "endpoint": "fraud", "alarm": "fraud-model-error-rate", "severity": "critical",
        "action": "rollback",
    }  # fmt: skip
    assert rule["annotations"]["action"] == "rollback"
    assert "Average of Invocation5XXErrors on fraud" in rule["annotations"]["summary"]
    assert yaml.safe_load(yaml.safe_dump(document)) == document


def test_latency_low_traffic_and_missing_data_have_their_promql() -> None:
    spec = _spec(
        name="p99", metric="ModelLatency", statistic="p99", threshold=150_000, variant="blue",
        min_requests=20, treat_missing_data="breaching", actions=(), period_s=1,
    )  # fmt: skip
    document, _ = prometheus_rules([spec], scrape_interval_s=15)
    rule = document["groups"][0]["rules"][0]
    selector = '{endpoint="fraud",variant="blue"}'
    requests = f"sum(increase(shipyard_invocations_total{selector}[60s])) * 1 / 60"
    assert rule["expr"] == (
        "(((histogram_quantile(0.99, sum by (le) "
        f"(rate(shipyard_model_latency_seconds_bucket{selector}[60s]))) * 1e6) > 150000.0) "
        f"and on() ({requests} >= 20)) or on() (({requests} < 20) or on() "
        f"absent_over_time(shipyard_invocations_total{selector}[60s]))"
    )
    assert rule["labels"]["severity"] == "warning" and "action" not in rule["labels"]


def test_alarms_without_an_equivalent_are_skipped_with_the_reason() -> None:
    published = _spec(name="drift", metric="feature_baseline_drift_amount", statistic="Maximum")
    minimum = _spec(name="fastest", metric="ModelLatency", statistic="Minimum")
    document, skipped = prometheus_rules([published, minimum])
    [rule] = document["groups"][0]["rules"]
    assert rule["expr"] == (
        '(max(max_over_time(shipyard_metric_value{endpoint="fraud",'
        'metric="feature_baseline_drift_amount"}[60s]))) > 0.05'
    )
    assert skipped == [
        "alarm 'fastest': Minimum of ModelLatency has no Prometheus equivalent (a histogram "
        "keeps no minimum or maximum); skipped"
    ]


def test_names_and_the_alertmanager_route() -> None:
    assert alert_name("fraud-p99.latency_2") == "ShipyardFraudP99Latency2"
    config = alertmanager_config("http://127.0.0.1:8080/api/v1/alertmanager", group_wait_s=0)
    assert config["route"]["group_wait"] == "0s"
    [receiver] = config["receivers"]
    assert receiver["webhook_configs"] == [
        {"url": "http://127.0.0.1:8080/api/v1/alertmanager", "send_resolved": True}
    ]
