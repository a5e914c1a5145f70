"""`shipyard endpoints update`'s blue/green options, turned into UpdateEndpoint's
``DeploymentConfig`` document (the server validates it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer

from shipyard.core.errors import InvalidRequestError

STRATEGY_OPTION = typer.Option(
    None,
    "--deployment",
    metavar="ALL_AT_ONCE|CANARY|LINEAR",
    help="Shift traffic blue/green with guardrails instead of swapping at once.",
)
STEP_OPTION = typer.Option(
    None, "--step-percent", help="CANARY: the canary's share; LINEAR: each step's share (%)."
)
WAIT_OPTION = typer.Option(1.0, "--wait", help="Seconds to bake after each shift.")
TERMINATION_OPTION = typer.Option(
    0.0, "--termination-wait", help="Seconds to bake at 100% before retiring the old fleet."
)
TIMEOUT_OPTION = typer.Option(
    600.0, "--max-time", help="Roll back when the deployment takes longer (seconds)."
)
ALARM_OPTION = typer.Option(
    None, "--alarm", help="An auto-rollback alarm watched while baking (repeat for more)."
)
MIN_REQUESTS_OPTION = typer.Option(
    None, "--min-requests", help="Requests a step needs before it can pass (default 10)."
)
DRIFT_OPTION = typer.Option(
    None,
    "--max-score-drift",
    help="Roll back when the new fleet's scores drift from the old's by more (Jensen-Shannon).",
)
DEPLOYMENT_FILE_OPTION = typer.Option(
    None,
    "--deployment-config",
    help="A DeploymentConfig JSON document instead of the options above.",
    exists=True,
    dir_okay=False,
)


def deployment_document(
    strategy: str | None,
    step_percent: int | None,
    wait_s: float,
    termination_wait_s: float,
    max_time_s: float,
    alarms: list[str] | None,
    min_requests: int | None,
    max_score_drift: float | None,
    deployment_file: Path | None,
) -> dict[str, Any] | None:
    if deployment_file is not None:
        try:
            loaded: dict[str, Any] = orjson.loads(deployment_file.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"{deployment_file} is not valid JSON: {exc}") from None
        return loaded
    if strategy is None:
        return None
    routing: dict[str, Any] = {"Type": strategy.upper(), "WaitIntervalInSeconds": wait_s}
    if strategy.upper() in ("CANARY", "LINEAR"):
        if step_percent is None:
            raise InvalidRequestError(f"--deployment {strategy} needs --step-percent")
        key = "CanarySize" if strategy.upper() == "CANARY" else "LinearStepSize"
        routing[key] = {"Type": "CAPACITY_PERCENT", "Value": step_percent}
    document: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": termination_wait_s,
            "MaximumExecutionTimeoutInSeconds": max_time_s,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms or []]},
    }
    if min_requests is not None:
        document["MinimumRequestsPerStep"] = min_requests
    if max_score_drift is not None:
        document["PredictionDriftCheck"] = {"Threshold": max_score_drift}
    return document
