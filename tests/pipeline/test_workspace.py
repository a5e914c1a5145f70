"""Alarm -> rollback wiring: the version behind the errors is the one rolled back."""

from __future__ import annotations

import time

from shipyard.core.config import Settings
from shipyard.core.types import Invocation, ModelRef
from shipyard.monitor import ALARM
from shipyard.pipeline import Workspace
from shipyard.registry import REJECTED
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult
from tests.serve.conftest import register


def _errors(workspace: Workspace, version: str, start_s: int, seconds: int) -> None:
    for second in range(start_s, start_s + seconds):
        for i in range(20):
            status = 500 if i % 2 else 200
            workspace.metrics.record(
                Invocation("fraud", "AllTraffic", status, 100.0, 10.0, second + 0.5,
                           model_version=version)
            )  # fmt: skip


def test_an_alarm_rolls_back_the_version_that_caused_it(
    settings: Settings, trained: TrainResult
) -> None:
    workspace = Workspace.open(settings)
    try:
        v1, v2 = register(workspace, trained.contents), register(workspace, trained.contents)
        workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v2)])
        workspace.guard_endpoints()
        now = int(time.time())
        _errors(workspace, str(v2), now - 4, 3)
        workspace.alarms.evaluate(now=now)
        assert workspace.alarms.state("fraud-model-error-rate") == ALARM
        assert workspace.endpoints.serving_versions("fraud") == {"AllTraffic": v1}
        assert workspace.registry.get("fraud", 2).approval_status == REJECTED
    finally:
        workspace.close()


def test_errors_of_a_version_already_replaced_roll_nothing_back(
    settings: Settings, trained: TrainResult
) -> None:
    workspace = Workspace.open(settings)
    try:
        refs = [register(workspace, trained.contents) for _ in range(3)]
        workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", refs[1])])
        workspace.guard_endpoints()
        now = int(time.time())
        _errors(workspace, str(refs[1]), now - 4, 3)  # v2 failed ...
        workspace.endpoints.route_all(
            "fraud", refs[2], actor="operator", reason="fix"
        )  # ... v3 is in
        workspace.alarms.evaluate(now=now)
        assert workspace.alarms.state("fraud-model-error-rate") == ALARM
        assert workspace.endpoints.serving_versions("fraud") == {"AllTraffic": refs[2]}
        assert workspace.rollback_log[-1].to_ref is None
        assert workspace.registry.get("fraud", 3).approval_status != REJECTED
        assert ModelRef.parse("fraud@2") == refs[1]
    finally:
        workspace.close()
