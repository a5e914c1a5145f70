"""Alarm definitions as documents: YAML files, and JSON shaped like CloudWatch's alarms.

A definition may use Shipyard's snake_case keys or CloudWatch's PutMetricAlarm names::

    alarms:
      - name: fraud-p99-latency            # AlarmName
        endpoint: fraud-detector           # Dimensions: EndpointName
        variant: AllTraffic                # Dimensions: VariantName (optional)
        metric: ModelLatency               # MetricName
        statistic: p99                     # Statistic or ExtendedStatistic
        period: 10                         # Period, seconds (any value from 1)
        evaluation_periods: 3              # EvaluationPeriods
        datapoints_to_alarm: 2             # DatapointsToAlarm
        threshold: 150000                  # Threshold (ModelLatency is in microseconds)
        comparison: GreaterThanThreshold   # ComparisonOperator
        treat_missing_data: missing        # TreatMissingData
        min_requests: 20                   # Shipyard: fewer requests = a missing datapoint
        actions: [rollback, "webhook:https://hooks.example/alarm", "pipeline:retrain"]
        ok_actions: []                     # OKActions
        insufficient_data_actions: []      # InsufficientDataActions
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shipyard.core.errors import InvalidRequestError
from shipyard.monitor.alarms import AlarmSpec
from shipyard.monitor.statistics import is_percentile

NAMESPACE = "Shipyard"
# Every accepted key -> the AlarmSpec field it sets.
_KEYS = {
    "name": "name", "AlarmName": "name",
    "endpoint": "endpoint", "variant": "variant",
    "metric": "metric", "MetricName": "metric",
    "statistic": "statistic", "Statistic": "statistic", "ExtendedStatistic": "statistic",
    "period": "period_s", "period_s": "period_s", "Period": "period_s",
    "evaluation_periods": "evaluation_periods", "EvaluationPeriods": "evaluation_periods",
    "datapoints_to_alarm": "datapoints_to_alarm", "DatapointsToAlarm": "datapoints_to_alarm",
    "threshold": "threshold", "Threshold": "threshold",
    "comparison": "comparison", "comparison_operator": "comparison",
    "ComparisonOperator": "comparison",
    "treat_missing_data": "treat_missing_data", "TreatMissingData": "treat_missing_data",
    "actions": "actions", "alarm_actions": "actions", "AlarmActions": "actions",
    "ok_actions": "ok_actions", "OKActions": "ok_actions",
    "insufficient_data_actions": "insufficient_data_actions",
    "InsufficientDataActions": "insufficient_data_actions",
    "min_requests": "min_requests", "MinRequests": "min_requests",
    "description": "description", "AlarmDescription": "description",
    "actions_enabled": "actions_enabled", "ActionsEnabled": "actions_enabled",
    "severity": "severity", "Severity": "severity",
}  # fmt: skip
_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "endpoint": (str,), "variant": (str,), "metric": (str,),
    "statistic": (str,), "period_s": (int,), "evaluation_periods": (int,),
    "datapoints_to_alarm": (int,), "threshold": (int, float), "comparison": (str,),
    "treat_missing_data": (str,), "actions": (list,), "ok_actions": (list,),
    "insufficient_data_actions": (list,), "min_requests": (int,), "description": (str,),
    "actions_enabled": (bool,), "severity": (str,),
}  # fmt: skip
_REQUIRED = ("name", "endpoint", "metric", "threshold")
_DIMENSIONS = {"EndpointName": "endpoint", "VariantName": "variant"}


def spec_from_dict(data: Any, *, name: str | None = None) -> AlarmSpec:
    """An alarm from one definition; ``name`` (from a URL) fills or must match its name."""
    if not isinstance(data, dict):
        raise InvalidRequestError(f"an alarm definition must be a mapping, got {_kind(data)}")
    label = name or data.get("name") or data.get("AlarmName") or "?"
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("Namespace", "Dimensions"):
            fields.update(_namespace_or_dimensions(label, key, value))
            continue
        if key not in _KEYS:
            raise InvalidRequestError(
                f"alarm {label!r}: unknown field {key!r}; fields: "
                + ", ".join(k for k in _KEYS if k[0].islower())
            )
        field = _KEYS[key]
        if value is None:
            continue
        expected = _TYPES[field]
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            wanted = " or ".join(t.__name__ for t in expected)
            raise InvalidRequestError(
                f"alarm {label!r}: field {key!r} must be {wanted}, got {_kind(value)}"
            )
        fields[field] = value
    if name is not None:
        if fields.setdefault("name", name) != name:
            raise InvalidRequestError(
                f"the body names alarm {fields['name']!r} but the URL names {name!r}"
            )
    missing = [f for f in _REQUIRED if f not in fields]
    if missing:
        raise InvalidRequestError(f"alarm {label!r} needs {', '.join(missing)}")
    for field in ("actions", "ok_actions", "insufficient_data_actions"):
        if field in fields:
            fields[field] = tuple(_action_text(label, a) for a in fields[field])
    fields["threshold"] = float(fields["threshold"])
    return AlarmSpec(**fields)


def spec_to_dict(spec: AlarmSpec) -> dict[str, Any]:
    """The definition in CloudWatch's names (DescribeAlarms' MetricAlarms entries)."""
    dimensions = [{"Name": "EndpointName", "Value": spec.endpoint}]
    if spec.variant:
        dimensions.append({"Name": "VariantName", "Value": spec.variant})
    statistic_key = "ExtendedStatistic" if is_percentile(spec.statistic) else "Statistic"
    return {
        "AlarmName": spec.name,
        "AlarmDescription": spec.description,
        "Namespace": NAMESPACE,
        "MetricName": spec.metric,
        "Dimensions": dimensions,
        statistic_key: spec.statistic,
        "Period": spec.period_s,
        "EvaluationPeriods": spec.evaluation_periods,
        "DatapointsToAlarm": spec.datapoints_to_alarm,  # null: as many as EvaluationPeriods
        "Threshold": spec.threshold,
        "ComparisonOperator": spec.comparison,
        "TreatMissingData": spec.treat_missing_data,
        "MinRequests": spec.min_requests,
        "ActionsEnabled": spec.actions_enabled,
        "AlarmActions": list(spec.actions),
        "OKActions": list(spec.ok_actions),
        "InsufficientDataActions": list(spec.insufficient_data_actions),
        "Severity": spec.severity,
    }


def load_alarm_file(path: Path) -> list[AlarmSpec]:
    """Every alarm of a YAML (or JSON) file: a list, or a mapping with an ``alarms`` list."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InvalidRequestError(f"{path}{where}: {problem}") from None
    if isinstance(document, dict) and set(document) == {"alarms"}:
        document = document["alarms"]
    if not isinstance(document, list) or not document:
        raise InvalidRequestError(
            f"{path} must hold a non-empty list of alarms, or a mapping 'alarms:' with one"
        )
    specs = [spec_from_dict(entry) for entry in document]
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidRequestError(f"{path} defines alarm {', '.join(repeated)} more than once")
    return specs


def _namespace_or_dimensions(label: str, key: str, value: Any) -> dict[str, Any]:
    if key == "Namespace":
        if value not in (NAMESPACE, "AWS/SageMaker"):
            raise InvalidRequestError(
                f"alarm {label!r}: Namespace {value!r} is not {NAMESPACE} or AWS/SageMaker"
            )
        return {}
    if not isinstance(value, list):
        raise InvalidRequestError(f"alarm {label!r}: Dimensions must be a list")
    found: dict[str, Any] = {}
    for dimension in value:
        if not isinstance(dimension, dict) or dimension.get("Name") not in _DIMENSIONS:
            raise InvalidRequestError(
                f"alarm {label!r}: each dimension is {{Name: EndpointName|VariantName, Value}}"
            )
        found[_DIMENSIONS[dimension["Name"]]] = str(dimension.get("Value", ""))
    return found


def _action_text(label: str, action: Any) -> str:
    if isinstance(action, str):
        return action
    if isinstance(action, dict) and len(action) == 1:
        # YAML reads "- webhook: https://..." as a mapping; take it as "webhook:https://...".
        [(kind, target)] = action.items()
        return f"{kind}:{target}"
    raise InvalidRequestError(f"alarm {label!r}: action {action!r} must be a string")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
