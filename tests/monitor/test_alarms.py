from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import InvalidRequestError
from shipyard.core.types import Invocation
from shipyard.monitor import ALARM, INSUFFICIENT_DATA, OK, AlarmManager, AlarmSpec, MetricsStore
from shipyard.monitor.alarms import decide
from shipyard.storage import MetadataStore, list_events


def _spec(**overrides: object) -> AlarmSpec:
    values: dict[str, object] = {
        "name": "errors",
        "metric": "Invocation5XXErrors",
        "endpoint": "ep",
        "threshold": 0.05,
        "period_s": 1,
        "evaluation_periods": 3,
        "datapoints_to_alarm": 2,
    }
    values.update(overrides)
    return AlarmSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("datapoints", "treatment", "current", "expected"),
    [
        ([0.0, 0.1, 0.2], "missing", OK, ALARM),  # 2 of 3 breach
        ([0.0, 0.0, 0.2], "missing", OK, OK),  # 1 of 3 is not enough
        ([None, None, None], "missing", OK, INSUFFICIENT_DATA),
        ([None, None, None], "notBreaching", ALARM, OK),
        ([None, None, 0.2], "breaching", OK, ALARM),
        ([None, None, None], "ignore", ALARM, ALARM),
        ([None, 0.0, 0.2], "missing", OK, OK),
    ],
)
def test_m_of_n_with_missing_data(
    datapoints: list[float | None], treatment: str, current: str, expected: str
) -> None:
    state, reason = decide(_spec(treat_missing_data=treatment), datapoints, current)
    assert state == expected
    assert reason


def test_specs_are_checked() -> None:
    with pytest.raises(InvalidRequestError, match="comparison"):
        _spec(comparison="Bigger")
    with pytest.raises(InvalidRequestError, match="datapoints_to_alarm"):
        _spec(datapoints_to_alarm=4)
    with pytest.raises(InvalidRequestError, match="statistic"):
        _spec(statistic="p100.5")


def _invocation(at_s: float, status: int, latency_us: float = 1000.0) -> Invocation:
    return Invocation("ep", "AllTraffic", status, latency_us, 10.0, at_s)


def test_metrics_statistics() -> None:
    metrics = MetricsStore()
    for i in range(100):
        metrics.record(_invocation(1000.2, 500 if i < 10 else 200, latency_us=float(i)))
    query = {"endpoint": "ep", "variant": None, "start_s": 1000, "end_s": 1001}
    assert metrics.query("Invocation5XXErrors", "Average", **query) == pytest.approx(0.1)
    assert metrics.query("Invocation5XXErrors", "Sum", **query) == 10
    assert metrics.query("Invocations", "Sum", **query) == 100
    assert metrics.query("ModelLatency", "p99", **query) == 99.0
    assert metrics.query("ModelLatency", "Maximum", **query) == 99.0
    assert metrics.query("Invocations", "Sum", **{**query, "start_s": 1001, "end_s": 1002}) is None


def test_manager_fires_actions_once_and_records_history(tmp_path: Path) -> None:
    metrics = MetricsStore()
    meta = MetadataStore(f"sqlite:///{tmp_path / 'a.db'}")
    fired: list[str] = []
    manager = AlarmManager(metrics, meta, on_transition=lambda s, t: fired.append(t.to_state))
    manager.put(_spec(treat_missing_data="notBreaching"))
    for second in (100, 101, 102):
        for _ in range(20):
            metrics.record(_invocation(second + 0.5, 200))
    manager.evaluate(now=103.1)
    assert manager.state("errors") == OK
    for second in (103, 104):
        for i in range(20):
            metrics.record(_invocation(second + 0.5, 500 if i % 2 else 200))
    manager.evaluate(now=104.1)  # only one complete bad period so far
    assert manager.state("errors") == OK
    manager.evaluate(now=105.1)
    manager.evaluate(now=105.6)  # same periods again: no second transition
    assert manager.state("errors") == ALARM
    assert fired == [OK, ALARM]
    history = list_events(meta, entity_kind="alarm")
    assert [(e["from_state"], e["to_state"]) for e in history] == [
        (INSUFFICIENT_DATA, OK),
        (OK, ALARM),
    ]
    assert "Threshold Crossed" in history[-1]["reason"]
