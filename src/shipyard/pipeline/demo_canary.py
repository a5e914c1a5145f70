"""The demo's canary scene: a version with a p99 latency regression goes out as a CANARY under
live traffic; a p99 ModelLatency alarm on the canary's variant trips while it bakes, and the
guardrail sends all traffic back to the old fleet without failing a request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shipyard.core.errors import StageFailed
from shipyard.core.types import ModelRef
from shipyard.monitor import AlarmSpec
from shipyard.pipeline.narration import Narrator, Stage, StageReport
from shipyard.pipeline.traffic import TrafficGenerator, TrafficReport
from shipyard.pipeline.workspace import Workspace
from shipyard.serve import VariantSpec
from shipyard.serve.deployment_config import deployment_from_document
from shipyard.storage import list_events

CANARY_PERCENT = 25
P99_THRESHOLD_US = 50_000.0  # 50 ms of model time per request: the healthy model takes ~1 ms


@dataclass(frozen=True)
class CanaryScene:
    slow: ModelRef
    alarm_reason: str
    rollback_s: float  # from the canary taking traffic to all traffic back on the old fleet
    traffic: TrafficReport


def p99_alarm(endpoint: str, variant: str) -> AlarmSpec:
    """p99 model latency of the new fleet's variant above 50 ms in 2 of 2 one-second periods."""
    return AlarmSpec(
        name=f"{endpoint}-canary-p99-latency",
        metric="ModelLatency",
        endpoint=endpoint,
        variant=variant,
        statistic="p99",
        threshold=P99_THRESHOLD_US,
        period_s=1,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        min_requests=5,
    )


def canary_scene(
    ws: Workspace,
    narrator: Narrator,
    reports: list[StageReport],
    url: str,
    endpoint: str,
    variant: str,
    *,
    good: ModelRef,
    slow: ModelRef,
    bodies: list[bytes],
    concurrency: int,
) -> CanaryScene:
    with Stage(narrator, reports, "canary") as stage:
        alarm = p99_alarm(endpoint, variant)
        ws.alarms.put(alarm)
        deployment = deployment_from_document(
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 6,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": CANARY_PERCENT},
                    },
                    "MaximumExecutionTimeoutInSeconds": 60,
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm.name}]},
                "MinimumRequestsPerStep": 20,
            }
        )  # fmt: skip
        narrator.say(
            f"CANARY {CANARY_PERCENT}% of traffic to {slow} (a latency regression), baking "
            f"{deployment.wait_s:g} s while watching {alarm.describe_rule()}"
        )
        traffic = TrafficGenerator(url, endpoint, bodies, concurrency=concurrency).start()
        started = time.time()
        ws.endpoints.update_endpoint(
            endpoint, [VariantSpec(variant, slow, 1.0)], actor="demo",
            reason=f"canary of {slow}", deployment=deployment,
        )  # fmt: skip
        deadline = time.time() + 30
        while ws.endpoints.describe(endpoint).status != "InService" and time.time() < deadline:
            time.sleep(0.05)
        done_s = time.time() - started
        time.sleep(0.5)
        seen = traffic.stop()
        serving = ws.endpoints.serving_versions(endpoint)
        if set(serving.values()) != {good}:
            raise StageFailed(f"canary: endpoint serves {serving}, expected {good} alone")
        rollback = next(
            (e for e in reversed(_events(ws, endpoint)) if e["action"] == "rollback"), None
        )
        if rollback is None or alarm.name not in rollback["reason"]:
            raise StageFailed(f"canary: no rollback by {alarm.name} (last: {rollback})")
        if seen.ok != seen.sent:
            raise StageFailed(f"canary: {seen.sent - seen.ok} of {seen.sent} requests failed")
        narrator.say(f"guardrail: {rollback['reason']}")
        stage.done(
            f"{slow} canaried at {CANARY_PERCENT}%, p99 alarm tripped, all traffic back on "
            f"{good} {done_s:.1f} s after the canary started; {seen.sent:,} requests, "
            f"0 failed",
            rollback_s=done_s,
        )
        return CanaryScene(slow, rollback["reason"], done_s, seen)


def _events(ws: Workspace, endpoint: str) -> list[dict[str, Any]]:
    return list_events(ws.meta, entity_kind="endpoint", entity_id=endpoint)
