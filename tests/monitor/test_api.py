"""The monitor's HTTP API: metrics queries, alarms, Alertmanager, endpoint rollback and history."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette

from shipyard.core.config import Settings
from shipyard.core.types import Invocation, ModelRef
from shipyard.pipeline import Workspace
from shipyard.pipeline.monitoring import monitor_routes
from shipyard.serve import VariantSpec
from shipyard.storage import list_events
from shipyard.train import TrainResult
from tests.monitor.asgi_client import AsgiClient
from tests.serve.conftest import register


@pytest.fixture
def workspace(settings: Settings, trained: TrainResult) -> Iterator[Workspace]:
    """Endpoint 'fraud' on fraud@2 after fraud@1; both Approved."""
    opened = Workspace.open(settings)
    v1, v2 = register(opened, trained.contents), register(opened, trained.contents)
    opened.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v1)])
    opened.endpoints.route_all("fraud", v2, actor="ops", reason="ship v2")
    yield opened
    opened.close()


@pytest.fixture
def client(workspace: Workspace) -> AsgiClient:
    return AsgiClient(Starlette(routes=monitor_routes(workspace)))


def _serving(workspace: Workspace) -> ModelRef:
    return workspace.endpoints.serving_versions("fraud")["AllTraffic"]


def test_metric_statistics_like_get_metric_statistics(
    client: AsgiClient, workspace: Workspace
) -> None:
    for i in range(10):
        workspace.metrics.record(
            Invocation("fraud", "AllTraffic", 500 if i < 2 else 200, 1000.0 * (i + 1), 5.0, 1000.5)
        )
    answer = client.get(
        "/api/v1/metrics",
        params={"endpoint": "fraud", "metric": "ModelLatency", "stat": "p90,Average",
                "period": "1", "start": "1000", "end": "1970-01-01T00:16:42Z"},
    )  # fmt: skip
    assert answer.status_code == 200
    [point] = answer.json()["Datapoints"]
    assert point["Timestamp"] == "1970-01-01T00:16:40+00:00"
    assert point["Average"] == 5500.0 and point["ExtendedStatistics"] == {"p90": 10000.0}
    assert (point["SampleCount"], point["Requests"], point["Unit"]) == (10, 10, "Microseconds")
    errors = client.get(
        "/api/v1/metrics",
        params=[("endpoint", "fraud"), ("metric", "Invocation5XXErrors"), ("stat", "Average"),
                ("stat", "Sum"), ("period", "60"), ("start", "960"), ("end", "1080")],
    ).json()["Datapoints"]  # fmt: skip
    assert [(p["Average"], p["Sum"]) for p in errors] == [(0.2, 2.0)]
    listed = client.get("/api/v1/metrics", params={"endpoint": "fraud"}).json()["Metrics"]
    assert {"EndpointName": "fraud", "VariantName": "AllTraffic", "MetricName": "ModelLatency"} in (
        listed
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metric": "Invocations"}, "needs ?endpoint="),
        ({"endpoint": "fraud", "metric": "Invocations", "stat": "Median"}, "statistic 'Median'"),
        ({"endpoint": "fraud", "metric": "Invocations", "period": "0"}, "whole number"),
        ({"endpoint": "fraud", "metric": "Invocations", "start": "yesterday"}, "'yesterday'"),
        ({"endpoint": "fraud", "metric": "Invocations", "start": "10", "end": "5"}, "after"),
        (
            {
                "endpoint": "fraud",
                "metric": "Invocations",
                "period": "1",
                "start": "0",
                "end": "5000",
            },
            "at most 1440",
        ),  # fmt: skip
    ],
)
def test_bad_metric_queries_are_400(
    client: AsgiClient, params: dict[str, str], message: str
) -> None:
    answer = client.get("/api/v1/metrics", params=params)
    assert answer.status_code == 400
    assert answer.json()["__type"] == "ValidationException" and message in answer.json()["message"]


ALARM_BODY = {
    "AlarmName": "fraud-errors",
    "MetricName": "Invocation5XXErrors",
    "Dimensions": [{"Name": "EndpointName", "Value": "fraud"}],
    "Statistic": "Average",
    "Period": 1,
    "EvaluationPeriods": 3,
    "DatapointsToAlarm": 2,
    "Threshold": 0.05,
    "ComparisonOperator": "GreaterThanThreshold",
    "TreatMissingData": "notBreaching",
    "AlarmActions": ["rollback"],
}


def test_alarms_are_put_listed_described_and_deleted(client: AsgiClient) -> None:
    put = client.put("/api/v1/alarms/fraud-errors", json={**ALARM_BODY, "actor": "ops"})
    assert put.status_code == 200, put.text
    assert (put.json()["StateValue"], put.json()["Origin"]) == ("INSUFFICIENT_DATA", "api")
    listed = client.get("/api/v1/alarms", params={"state": "INSUFFICIENT_DATA"}).json()
    assert [a["AlarmName"] for a in listed["MetricAlarms"]] == ["fraud-errors"]
    assert client.get("/api/v1/alarms", params={"endpoint": "other"}).json()["MetricAlarms"] == []
    described = client.get("/api/v1/alarms/fraud-errors").json()
    assert described["AlarmActions"] == ["rollback"] and described["DatapointsToAlarm"] == 2
    assert client.delete("/api/v1/alarms/fraud-errors").json() == {"Deleted": "fraud-errors"}
    gone = client.get("/api/v1/alarms/fraud-errors")
    assert gone.status_code == 404 and gone.json()["__type"] == "ResourceNotFound"
    history = client.get("/api/v1/alarms/fraud-errors/history").json()["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in history] == ["Alarm updated", "Alarm deleted"]
    assert history[0]["Actor"] == "ops"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("PUT", "/api/v1/alarms/a", {**ALARM_BODY, "Threshold": "x"}, 400, "'Threshold'"),
        (
            "PUT",
            "/api/v1/alarms/fraud-errors",
            {**ALARM_BODY, "AlarmActions": ["pipeline:nope"]},
            400,
            "no pipeline action 'nope'",
        ),
        ("PUT", "/api/v1/alarms/a", [1], 400, "JSON object"),
        ("PUT", "/api/v1/alarms/bad%20name", ALARM_BODY, 400, "alarm name"),
        ("POST", "/api/v1/alarms", ALARM_BODY, 405, "accepts GET only"),
        ("GET", "/api/v1/alarms/none/history", None, 404, "alarm 'none' does not exist"),
        ("POST", "/api/v1/alarms/none/state", {"state": "OK", "reason": "x"}, 404, "'none'"),
        ("POST", "/api/v1/endpoints/nope/rollback", {}, 404, "endpoint 'nope' does not exist"),
        ("POST", "/api/v1/endpoints/fraud/rollback", {"from": "v2"}, 400, "GROUP@VERSION"),
        ("POST", "/api/v1/endpoints/fraud/rollback", {"force": True}, 400, "only"),
        ("GET", "/api/v1/endpoints/nope/history", None, 404, "does not exist"),
    ],  # fmt: skip
)
def test_bad_calls_get_a_json_4xx(
    client: AsgiClient, method: str, path: str, body: Any, status: int, message: str
) -> None:
    answer = client.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]


def test_setting_an_alarm_to_alarm_runs_its_rollback(
    client: AsgiClient, workspace: Workspace
) -> None:
    client.put("/api/v1/alarms/fraud-errors", json=ALARM_BODY)
    answer = client.post(
        "/api/v1/alarms/fraud-errors/state", json={"state": "ALARM", "reason": "drill"}
    )
    assert answer.status_code == 200 and answer.json()["Changed"] is True
    assert _serving(workspace) == ModelRef("fraud", 1)
    items = client.get("/api/v1/alarms/fraud-errors/history").json()["AlarmHistoryItems"]
    assert [i["HistoryItemType"] for i in items] == [
        "ConfigurationUpdate", "StateUpdate", "Action"
    ]  # fmt: skip
    assert items[2]["HistorySummary"] == "rollback fraud: fraud@2 -> fraud@1"


def _alertmanager(status: str, starts_at: float, **labels: str) -> dict[str, Any]:
    moment = datetime.fromtimestamp(starts_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    alert = {
        "status": status,
        "labels": {"alertname": "ShipyardFraudErrors", **labels},
        "annotations": {"summary": "error rate above 5 %", "action": "rollback"},
        "startsAt": moment,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "c0ffee",
    }
    return {
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": status,
        "receiver": "shipyard", "groupLabels": {}, "commonLabels": labels,
        "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": [alert],
    }  # fmt: skip


def test_alertmanager_alerts_roll_back_once_and_are_recorded(
    client: AsgiClient, workspace: Workspace
) -> None:
    started = time.time()
    body = _alertmanager("firing", started, endpoint="fraud", severity="critical")
    first = client.post("/api/v1/alertmanager", json=body).json()
    assert first["Alerts"][0]["Outcome"] == "rolled back fraud: fraud@2 -> fraud@1"
    assert _serving(workspace) == ModelRef("fraud", 1)
    again = client.post("/api/v1/alertmanager", json=body).json()  # Alertmanager repeats
    assert again["Alerts"][0]["Outcome"].startswith("no-op: nothing to do: fraud@2 no longer")
    assert _serving(workspace) == ModelRef("fraud", 1)
    resolved = client.post("/api/v1/alertmanager", json=_alertmanager("resolved", started))
    assert resolved.json()["Alerts"][0]["Outcome"] == "recorded"
    recorded = list_events(workspace.meta, entity_kind="alertmanager")
    assert [e["action"] for e in recorded] == ["firing", "firing", "resolved"]
    assert recorded[0]["details"]["labels"]["endpoint"] == "fraud"
    [rollback] = [
        e for e in list_events(workspace.meta, entity_id="fraud") if e["action"] == "rollback"
    ]
    assert rollback["actor"] == "alertmanager (ShipyardFraudErrors)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": "3", "alerts": []}, "version '3' is not supported"),
        ({"version": "4"}, "no 'alerts' list"),
        ({"version": "4", "alerts": [{"status": "odd"}]}, "status 'odd'"),
        ({"version": "4", "alerts": [{"status": "firing", "startsAt": "now"}]}, "RFC 3339"),
        ({"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]}, "labels"),
    ],
)
def test_malformed_alertmanager_notifications_are_400(
    client: AsgiClient, body: dict[str, Any], message: str
) -> None:
    answer = client.post("/api/v1/alertmanager", json=body)
    assert answer.status_code == 400 and message in answer.json()["message"]


def test_manual_rollback_is_idempotent_with_from_and_the_history_tells_why(
    client: AsgiClient, workspace: Workspace
) -> None:
    body = {"actor": "alice", "reason": "bad scores", "from": "fraud@2"}
    first = client.post("/api/v1/endpoints/fraud/rollback", json=body).json()
    assert (first["RolledBack"], first["From"], first["To"]) == (True, "fraud@2", "fraud@1")
    second = client.post("/api/v1/endpoints/fraud/rollback", json=body).json()
    assert second["RolledBack"] is False and _serving(workspace) == ModelRef("fraud", 1)
    refused = client.post("/api/v1/endpoints/fraud/rollback", json={})
    assert refused.status_code == 409  # fraud@1 has no older Approved version
    history = client.get("/api/v1/endpoints/fraud/history").json()["History"]
    changes = [h for h in history if h["TrafficChanged"]]
    assert [[(t["ModelPackage"], t["Share"]) for t in h["Traffic"]] for h in changes] == [
        [("fraud@1", 1.0)], [("fraud@2", 1.0)], [("fraud@1", 1.0)],
    ]  # fmt: skip
    assert changes[1]["Reason"] == "ship v2"
    assert "rollback from fraud@2 to fraud@1 (manual): bad scores" in changes[2]["Reason"]
    assert changes[2]["Actor"] == "alice"
    actions = [h["Action"] for h in history]
    assert actions.count("rollback") == 1 and "rollback-noop" in actions
    assert "rollback-failed" in actions
