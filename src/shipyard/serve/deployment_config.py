"""UpdateEndpoint's ``DeploymentConfig``: how a new fleet takes over an endpoint's traffic.

The document uses SageMaker's shapes and names::

    {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {
            "Type": "ALL_AT_ONCE" | "CANARY" | "LINEAR", "WaitIntervalInSeconds": 1,
            "CanarySize": {"Type": "CAPACITY_PERCENT" | "INSTANCE_COUNT", "Value": 10},
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
        "TerminationWaitInSeconds": 0, "MaximumExecutionTimeoutInSeconds": 600},
     "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "fraud-model-error-rate"}]},
     "MinimumRequestsPerStep": 10,
     "PredictionDriftCheck": {"Statistic": "jensen_shannon", "Threshold": 0.1}}

Differences from SageMaker, on purpose: the waits and the timeout take seconds as any number
(SageMaker: whole seconds, a timeout of at least 600), so a local rollout and its tests can
bake for a second. ``MinimumRequestsPerStep`` and ``PredictionDriftCheck`` are Shipyard's: a
step that saw too few requests is inconclusive and keeps baking, and a canary can be gated on
its score distribution against the old fleet's over the same bake window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from shipyard.core.errors import InvalidRequestError

ALL_AT_ONCE, CANARY, LINEAR = "ALL_AT_ONCE", "CANARY", "LINEAR"
TRAFFIC_TYPES = (ALL_AT_ONCE, CANARY, LINEAR)
CAPACITY_PERCENT, INSTANCE_COUNT = "CAPACITY_PERCENT", "INSTANCE_COUNT"
DRIFT_STATISTICS = ("jensen_shannon", "wasserstein")
MAX_WAIT_S = 3600.0
MAX_EXECUTION_S = 28800.0
DEFAULT_MIN_REQUESTS = 10


@dataclass(frozen=True)
class CapacitySize:
    type: str
    value: int

    def share_of(self, instances: int) -> float:
        """The share of traffic this size means for a fleet of ``instances``."""
        if self.type == CAPACITY_PERCENT:
            return self.value / 100.0
        return self.value / max(instances, 1)


@dataclass(frozen=True)
class DriftCheck:
    statistic: str = "jensen_shannon"
    threshold: float = 0.1


@dataclass(frozen=True)
class DeploymentConfig:
    traffic_type: str
    wait_s: float
    canary_size: CapacitySize | None = None
    linear_step_size: CapacitySize | None = None
    termination_wait_s: float = 0.0
    max_execution_s: float = 3600.0
    alarms: tuple[str, ...] = ()
    min_requests: int = DEFAULT_MIN_REQUESTS
    drift: DriftCheck | None = None

    def shares(self, instances: int) -> tuple[float, ...]:
        """The new fleet's share after each shift, ending at 1.0."""
        if self.traffic_type == CANARY:
            assert self.canary_size is not None
            return (self.canary_size.share_of(instances), 1.0)
        if self.traffic_type == LINEAR:
            assert self.linear_step_size is not None
            step = self.linear_step_size.share_of(instances)
            count = math.ceil(1.0 / step - 1e-9)
            return tuple(min(1.0, round(step * k, 6)) for k in range(1, count + 1))
        return (1.0,)


def deployment_to_document(config: DeploymentConfig) -> dict[str, Any]:
    routing: dict[str, Any] = {
        "Type": config.traffic_type,
        "WaitIntervalInSeconds": config.wait_s,
    }
    if config.canary_size is not None:
        routing["CanarySize"] = _size_doc(config.canary_size)
    if config.linear_step_size is not None:
        routing["LinearStepSize"] = _size_doc(config.linear_step_size)
    doc: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": config.termination_wait_s,
            "MaximumExecutionTimeoutInSeconds": config.max_execution_s,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in config.alarms]},
        "MinimumRequestsPerStep": config.min_requests,
    }
    if config.drift is not None:
        doc["PredictionDriftCheck"] = {
            "Statistic": config.drift.statistic,
            "Threshold": config.drift.threshold,
        }
    return doc


def deployment_from_document(doc: Any, *, instances: int = 1) -> DeploymentConfig:
    """Parse and validate; ``instances`` is the new fleet's size (for INSTANCE_COUNT sizes)."""
    _check(isinstance(doc, dict), "DeploymentConfig must be a JSON object")
    _check(
        "RollingUpdatePolicy" not in doc,
        "DeploymentConfig.RollingUpdatePolicy is not supported; use BlueGreenUpdatePolicy",
    )
    policy = doc.get("BlueGreenUpdatePolicy")
    _check(isinstance(policy, dict), "DeploymentConfig.BlueGreenUpdatePolicy is required")
    where = "BlueGreenUpdatePolicy.TrafficRoutingConfiguration"
    routing = policy.get("TrafficRoutingConfiguration")
    _check(isinstance(routing, dict), f"{where} is required")
    kind = routing.get("Type")
    _check(kind in TRAFFIC_TYPES, f"{where}.Type must be one of {TRAFFIC_TYPES}, got {kind!r}")
    wait = _seconds(routing, "WaitIntervalInSeconds", where, None, MAX_WAIT_S)
    canary = _size(routing.get("CanarySize"), f"{where}.CanarySize")
    linear = _size(routing.get("LinearStepSize"), f"{where}.LinearStepSize")
    if kind == CANARY:
        _check(canary is not None, f"{where}.CanarySize is required for CANARY")
        assert canary is not None
        share = canary.share_of(instances)
        _check(
            0 < share <= 0.5,
            f"{where}.CanarySize must be at most 50% of the new fleet, got {share:.0%}",
        )
    if kind == LINEAR:
        _check(linear is not None, f"{where}.LinearStepSize is required for LINEAR")
        assert linear is not None
        share = linear.share_of(instances)
        _check(
            0.1 <= share <= 0.5,
            f"{where}.LinearStepSize must be 10-50% of the new fleet, got {share:.0%}",
        )
    termination = _seconds(
        policy, "TerminationWaitInSeconds", "BlueGreenUpdatePolicy", 0.0, MAX_WAIT_S
    )
    maximum = _seconds(
        policy, "MaximumExecutionTimeoutInSeconds", "BlueGreenUpdatePolicy", 3600.0,
        MAX_EXECUTION_S,
    )  # fmt: skip
    _check(
        maximum > wait + termination,
        "BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds must exceed "
        f"WaitIntervalInSeconds + TerminationWaitInSeconds ({wait + termination:g}), "
        f"got {maximum:g}",
    )
    config = DeploymentConfig(
        traffic_type=kind,
        wait_s=wait,
        canary_size=canary if kind == CANARY else None,
        linear_step_size=linear if kind == LINEAR else None,
        termination_wait_s=termination,
        max_execution_s=maximum,
        alarms=_alarms(doc.get("AutoRollbackConfiguration")),
        min_requests=_min_requests(doc),
        drift=_drift(doc.get("PredictionDriftCheck")),
    )
    _check(
        config.drift is None or kind != ALL_AT_ONCE,
        "PredictionDriftCheck compares the new fleet's scores with the old fleet's on shared "
        "traffic: it needs CANARY or LINEAR, not ALL_AT_ONCE",
    )
    return config


def _size_doc(size: CapacitySize) -> dict[str, Any]:
    return {"Type": size.type, "Value": size.value}


def _size(raw: Any, where: str) -> CapacitySize | None:
    if raw is None:
        return None
    _check(isinstance(raw, dict), f"{where} must be a JSON object")
    kind, value = raw.get("Type"), raw.get("Value")
    _check(
        kind in (CAPACITY_PERCENT, INSTANCE_COUNT),
        f"{where}.Type must be CAPACITY_PERCENT or INSTANCE_COUNT, got {kind!r}",
    )
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        f"{where}.Value must be an integer >= 1, got {value!r}",
    )
    return CapacitySize(kind, value)


def _seconds(raw: dict[str, Any], key: str, where: str, default: float | None, top: float) -> float:
    value = raw.get(key, default)
    _check(
        isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= top,
        f"{where}.{key} must be a number of seconds 0-{top:g}, got {value!r}",
    )
    return float(value)  # type: ignore[arg-type]


def _alarms(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    where = "AutoRollbackConfiguration.Alarms"
    _check(isinstance(raw, dict), "AutoRollbackConfiguration must be a JSON object")
    alarms = raw.get("Alarms", [])
    _check(
        isinstance(alarms, list)
        and len(alarms) <= 10
        and all(isinstance(a, dict) and isinstance(a.get("AlarmName"), str) for a in alarms),
        f"{where} must list at most 10 objects with an AlarmName",
    )
    names = tuple(a["AlarmName"] for a in alarms)
    _check(all(1 <= len(n) <= 255 for n in names), f"{where}: AlarmName must be 1-255 chars")
    return names


def _min_requests(doc: dict[str, Any]) -> int:
    value = doc.get("MinimumRequestsPerStep", DEFAULT_MIN_REQUESTS)
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        f"MinimumRequestsPerStep must be an integer >= 0, got {value!r}",
    )
    return int(value)


def _drift(raw: Any) -> DriftCheck | None:
    if raw is None:
        return None
    _check(isinstance(raw, dict), "PredictionDriftCheck must be a JSON object")
    statistic = raw.get("Statistic", "jensen_shannon")
    _check(
        statistic in DRIFT_STATISTICS,
        f"PredictionDriftCheck.Statistic must be one of {DRIFT_STATISTICS}, got {statistic!r}",
    )
    threshold = raw.get("Threshold", 0.1)
    _check(
        isinstance(threshold, int | float) and not isinstance(threshold, bool) and threshold > 0,
        f"PredictionDriftCheck.Threshold must be a number > 0, got {threshold!r}",
    )
    return DriftCheck(statistic, float(threshold))


def _check(condition: object, message: str) -> None:
    if not condition:
        raise InvalidRequestError(message)
