"""DeploymentConfig documents: the shares each traffic-routing type shifts, and validation."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.core.errors import InvalidRequestError
from shipyard.serve.deployment_config import deployment_from_document, deployment_to_document


def _doc(routing: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"WaitIntervalInSeconds": 1, **routing},
            "MaximumExecutionTimeoutInSeconds": 600,
        },
        **extra,
    }


def test_shares_of_each_traffic_routing_type() -> None:
    assert deployment_from_document(_doc({"Type": "ALL_AT_ONCE"})).shares(1) == (1.0,)
    canary = _doc({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}})
    assert deployment_from_document(canary, instances=4).shares(4) == (0.25, 1.0)
    linear = _doc({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20}})
    assert deployment_from_document(linear).shares(1) == (0.2, 0.4, 0.6, 0.8, 1.0)
    parsed = deployment_from_document(_doc({"Type": "ALL_AT_ONCE"}, MinimumRequestsPerStep=0))
    assert parsed.min_requests == 0 and parsed.alarms == ()
    assert deployment_from_document(deployment_to_document(parsed)) == parsed


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("x", "DeploymentConfig must be a JSON object"),
        ({"RollingUpdatePolicy": {}}, "RollingUpdatePolicy is not supported"),
        (_doc({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}),
         "CanarySize must be at most 50%"),  # one instance of one: 100 %
        (_doc({"Type": "ALL_AT_ONCE"}, MinimumRequestsPerStep=-1), "MinimumRequestsPerStep"),
        (_doc({"Type": "ALL_AT_ONCE"}, AutoRollbackConfiguration={"Alarms": [{}]}),
         "with an AlarmName"),
        (_doc({"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
              PredictionDriftCheck={"Statistic": "psi"}), "Statistic must be one of"),
    ],
)  # fmt: skip
def test_a_bad_document_names_the_field(doc: Any, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        deployment_from_document(doc)
