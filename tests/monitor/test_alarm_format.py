"""Alarm definitions in YAML and JSON: Shipyard's keys, CloudWatch's keys, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import InvalidRequestError
from shipyard.monitor import AlarmSpec, load_alarm_file, spec_from_dict, spec_to_dict

YAML = """
alarms:
  - name: fraud-p99-latency
    endpoint: fraud
    variant: AllTraffic
    metric: ModelLatency
    statistic: p99
    period: 10
    evaluation_periods: 3
    datapoints_to_alarm: 2
    threshold: 150000
    comparison: GreaterThanThreshold
    treat_missing_data: breaching
    min_requests: 20
    actions:
      - rollback
      - webhook: https://hooks.example/alarm
    ok_actions: ["pipeline:retrain"]
  - AlarmName: fraud-errors
    MetricName: Invocation5XXErrors
    Namespace: AWS/SageMaker
    Dimensions: [{Name: EndpointName, Value: fraud}]
    Statistic: Average
    Period: 60
    EvaluationPeriods: 2
    Threshold: 0.05
    ComparisonOperator: GreaterThanOrEqualToThreshold
    AlarmActions: [rollback]
"""


def test_a_file_mixing_both_spellings(tmp_path: Path) -> None:
    path = tmp_path / "alarms.yaml"
    path.write_text(YAML)
    latency, errors = load_alarm_file(path)
    assert latency == AlarmSpec(
        name="fraud-p99-latency", metric="ModelLatency", endpoint="fraud", threshold=150000.0,
        variant="AllTraffic", statistic="p99", period_s=10, evaluation_periods=3,
        datapoints_to_alarm=2, comparison="GreaterThanThreshold",
        treat_missing_data="breaching", actions=("rollback", "webhook:https://hooks.example/alarm"),
        ok_actions=("pipeline:retrain",), min_requests=20,
    )  # fmt: skip
    assert (errors.endpoint, errors.variant, errors.m, errors.treat_missing_data) == (
        "fraud", None, 2, "missing"
    )  # fmt: skip
    for spec in (latency, errors):
        assert spec_from_dict(spec_to_dict(spec)) == spec


def test_the_cloudwatch_shape_names_percentiles_as_extended_statistics() -> None:
    shown = spec_to_dict(
        AlarmSpec(name="a", metric="ModelLatency", endpoint="e", threshold=1, statistic="p99.9")
    )
    assert shown["ExtendedStatistic"] == "p99.9" and "Statistic" not in shown
    assert shown["Dimensions"] == [{"Name": "EndpointName", "Value": "e"}]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"name": "a", "endpoint": "e", "metric": "Invocations"}, "alarm 'a' needs threshold"),
        ({"name": "a", "endpoint": "e", "metric": "m", "threshold": 1, "colour": 1}, "'colour'"),
        (
            {"name": "a", "endpoint": "e", "metric": "m", "threshold": "high"},
            "field 'threshold' must be int or float, got str",
        ),
        (
            {"name": "a", "endpoint": "e", "metric": "m", "threshold": 1, "period": True},
            "field 'period' must be int, got bool",
        ),
        (
            {"name": "a", "endpoint": "e", "metric": "m", "threshold": 1, "Namespace": "AWS/EC2"},
            "Namespace 'AWS/EC2'",
        ),
        (
            {"name": "a", "endpoint": "e", "metric": "m", "threshold": 1, "actions": ["email"]},
            "action 'email'",
        ),
        ([1, 2], "must be a mapping, got list"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(definition: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        spec_from_dict(definition)


def test_the_url_name_fills_or_must_match_the_body() -> None:
    body = {"endpoint": "e", "metric": "Invocations", "threshold": 1}
    assert spec_from_dict(body, name="from-url").name == "from-url"
    with pytest.raises(InvalidRequestError, match="body names alarm 'x' but the URL names 'y'"):
        spec_from_dict({**body, "name": "x"}, name="y")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alarms: [\n  {name: a,\n", "line"),
        ("[]", "non-empty list"),
        ("- {name: a, endpoint: e, metric: m, threshold: 1}\n" * 2, "defines alarm a more than"),
    ],
)
def test_bad_files_are_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "alarms.yaml"
    path.write_text(text)
    with pytest.raises(InvalidRequestError, match=message) as raised:
        load_alarm_file(path)
    assert "\n" not in str(raised.value)
    with pytest.raises(InvalidRequestError, match="cannot read"):
        load_alarm_file(tmp_path / "missing.yaml")
