"""Alarm evaluation with CloudWatch's semantics, rule by rule (CloudWatch user guide tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import InvalidRequestError, NotFoundError
from shipyard.core.types import Invocation
from shipyard.monitor import ALARM, INSUFFICIENT_DATA, OK, AlarmManager, AlarmSpec, MetricsStore
from shipyard.monitor.alarms import decide
from shipyard.storage import MetadataStore, list_events

RETAIN = "retain current state"
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


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


def _points(row: str) -> list[float | None]:
    """'0 - X' -> [good, missing, breaching] (oldest first), against a threshold of 0.5."""
    return [{"0": 0.0, "X": 1.0, "-": None}[c] for c in row.split()]


# The two tables of "How alarm state is evaluated when data is missing" (evaluation range 5,
# evaluation periods 3), columns MISSING, IGNORE, BREACHING, NOT BREACHING.
CLOUDWATCH_TABLES = [
    (3, "0 - X - X", (OK, OK, OK, OK)),
    (3, "0 - - - -", (OK, OK, OK, OK)),
    (3, "- - - - -", (INSUFFICIENT_DATA, RETAIN, ALARM, OK)),
    (3, "0 X X - X", (ALARM, ALARM, ALARM, ALARM)),
    (3, "- - X - -", (ALARM, RETAIN, ALARM, OK)),
    (2, "0 - X - X", (ALARM, ALARM, ALARM, ALARM)),
    (2, "0 0 X 0 X", (ALARM, ALARM, ALARM, ALARM)),
    (2, "0 - X - -", (OK, OK, ALARM, OK)),
    (2, "- - - - 0", (OK, OK, ALARM, OK)),
    (2, "- - - X -", (ALARM, RETAIN, ALARM, OK)),
    (2, "- - X - -", (ALARM, RETAIN, ALARM, OK)),
]


@pytest.mark.parametrize(("m", "row", "expected"), CLOUDWATCH_TABLES)
@pytest.mark.parametrize("current", [OK, ALARM, INSUFFICIENT_DATA])
def test_cloudwatch_missing_data_tables(
    m: int, row: str, expected: tuple[str, ...], current: str
) -> None:
    for treatment, wanted in zip(TREATMENTS, expected, strict=True):
        spec = _spec(threshold=0.5, datapoints_to_alarm=m, treat_missing_data=treatment)
        state, reason = decide(spec, _points(row), current)
        assert state == (current if wanted == RETAIN else wanted), (row, treatment)
        assert reason


def test_premature_alarm_waits_for_the_breach_to_age() -> None:
    # "- - - - X" and "- - - X -" must not alarm yet (M = 3): the next point may be good.
    spec = _spec(threshold=0.5, datapoints_to_alarm=3)
    assert decide(spec, _points("- - - - X"), OK)[0] == OK
    assert decide(spec, _points("- - - X -"), OK)[0] == OK
    state, reason = decide(spec, _points("- - X - -"), OK)
    assert state == ALARM and "premature" in reason


def test_only_the_newest_n_real_datapoints_count_when_enough_are_real() -> None:
    spec = _spec(threshold=0.5, datapoints_to_alarm=3, treat_missing_data="breaching")
    # Four real points: only the newest three count, and the breaching treatment plays no part.
    assert decide(spec, _points("X X - X 0"), OK)[0] == OK
    assert decide(spec, _points("X X - 0 X"), OK)[0] == OK
    assert decide(spec, _points("X 0 X X X"), OK)[0] == ALARM


@pytest.mark.parametrize(
    ("comparison", "value", "breaches"),
    [
        ("GreaterThanThreshold", 0.5, False),
        ("GreaterThanOrEqualToThreshold", 0.5, True),
        ("LessThanThreshold", 0.5, False),
        ("LessThanOrEqualToThreshold", 0.5, True),
        ("LessThanThreshold", 0.4, True),
        ("GreaterThanThreshold", 0.6, True),
    ],
)
def test_comparison_operators_at_and_around_the_threshold(
    comparison: str, value: float, breaches: bool
) -> None:
    spec = _spec(threshold=0.5, comparison=comparison, evaluation_periods=1, datapoints_to_alarm=1)
    state, reason = decide(spec, [value], OK)
    assert state == (ALARM if breaches else OK)
    assert "0.5" in reason


def test_reasons_say_what_crossed() -> None:
    state, reason = decide(_spec(), [0.0, 0.1, 0.2], OK)
    assert state == ALARM
    assert reason.startswith("Threshold Crossed: 2 out of the last 3 datapoints [0.2, 0.1, 0]")
    assert "greater than the threshold (0.05)" in reason


def test_specs_are_checked() -> None:
    with pytest.raises(InvalidRequestError, match="comparison"):
        _spec(comparison="Bigger")
    with pytest.raises(InvalidRequestError, match="datapoints_to_alarm"):
        _spec(datapoints_to_alarm=4)
    with pytest.raises(InvalidRequestError, match="statistic"):
        _spec(statistic="p100.5")
    with pytest.raises(InvalidRequestError, match="one day"):
        _spec(period_s=3600, evaluation_periods=25)
    with pytest.raises(InvalidRequestError, match="action 'page-me'"):
        _spec(actions=("page-me",))
    with pytest.raises(InvalidRequestError, match="alarm name"):
        _spec(name="has space")
    assert _spec(actions=("rollback", "webhook:http://h/x", "pipeline:retrain")).m == 2


def _invocation(at_s: float, status: int, latency_us: float = 1000.0) -> Invocation:
    return Invocation("ep", "AllTraffic", status, latency_us, 10.0, at_s)


def _meta(tmp_path: Path) -> MetadataStore:
    return MetadataStore(f"sqlite:///{tmp_path / 'a.db'}")


def test_manager_fires_actions_once_and_records_history(tmp_path: Path) -> None:
    metrics = MetricsStore()
    meta = _meta(tmp_path)
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
    manager.evaluate(now=105.6)  # same periods again: not evaluated twice
    assert manager.state("errors") == ALARM
    assert fired == [OK, ALARM]
    history = list_events(meta, entity_kind="alarm")
    assert [(e["from_state"], e["to_state"]) for e in history] == [
        (INSUFFICIENT_DATA, OK),
        (OK, ALARM),
    ]
    assert "Threshold Crossed" in history[-1]["reason"]
    assert history[-1]["details"]["datapoints"][-2:] == [0.5, 0.5]


def test_low_traffic_periods_are_missing_and_say_so(tmp_path: Path) -> None:
    metrics = MetricsStore()
    manager = AlarmManager(metrics, _meta(tmp_path))
    manager.put(_spec(min_requests=10, treat_missing_data="missing"))
    for second in (100, 101, 102):  # 3 requests a second, every one an error
        for _ in range(3):
            metrics.record(_invocation(second + 0.5, 500))
    manager.evaluate(now=103.0)
    status = manager.status("errors")
    assert status.state == INSUFFICIENT_DATA  # not ALARM, and not OK either
    manager.evaluate(now=104.0)
    for second in (104, 105):
        for _ in range(10):
            metrics.record(_invocation(second + 0.5, 500))
    manager.evaluate(now=106.0)
    assert manager.state("errors") == ALARM
    assert "min_requests=10" in manager.status("errors").reason
    assert "low traffic is not a pass" in manager.status("errors").reason


def test_definitions_and_states_survive_a_restart(tmp_path: Path) -> None:
    meta = _meta(tmp_path)
    first = AlarmManager(MetricsStore(), meta)
    first.put(_spec(name="kept", actions=("rollback",)), persist=True, actor="ops")
    first.put(_spec(name="gone"), persist=True)
    first.put(_spec(name="builtin"))  # not persisted: a server adds its defaults at start
    first.set_state("kept", ALARM, reason="drill", actor="ops")
    first.delete("gone", actor="ops")
    with pytest.raises(NotFoundError, match="alarm 'gone' does not exist; alarms: builtin, kept"):
        first.status("gone")

    second = AlarmManager(MetricsStore(), meta)
    assert second.load() == ["kept"]
    status = second.status("kept")
    assert status.spec == _spec(name="kept", actions=("rollback",))
    assert (status.state, status.origin) == (ALARM, "api")
    assert "drill" in status.reason
    actions = [e["action"] for e in second.events("kept")]
    assert actions == ["put", "state"]
    assert second.events("kept")[0]["actor"] == "ops"


def test_a_defined_alarm_wins_over_the_builtin_default(tmp_path: Path) -> None:
    manager = AlarmManager(MetricsStore(), _meta(tmp_path))
    manager.put(_spec(threshold=0.2), persist=True)
    assert not manager.put_default(_spec(threshold=0.05))
    assert manager.status("errors").spec.threshold == 0.2
    assert manager.put_default(_spec(name="other"))


def test_set_state_runs_actions_until_the_next_evaluation(tmp_path: Path) -> None:
    metrics = MetricsStore()
    fired: list[tuple[str, str]] = []
    manager = AlarmManager(
        metrics, _meta(tmp_path), on_transition=lambda s, t: fired.append((t.to_state, t.reason))
    )
    manager.put(_spec(treat_missing_data="notBreaching"))
    manager.evaluate(now=100.2)
    assert manager.set_state("errors", ALARM, reason="testing the pager", actor="me") is not None
    assert manager.set_state("errors", ALARM, reason="again") is None  # no change, no actions
    manager.evaluate(now=100.9)  # same period: the forced state stays
    assert manager.state("errors") == ALARM
    manager.evaluate(now=101.1)
    assert manager.state("errors") == OK
    assert [state for state, _ in fired] == [OK, ALARM, OK]
    assert "set by me: testing the pager" in fired[1][1]
    with pytest.raises(InvalidRequestError, match="state 'RED'"):
        manager.set_state("errors", "RED", reason="x")
    with pytest.raises(InvalidRequestError, match="needs a reason"):
        manager.set_state("errors", ALARM, reason=" ")
