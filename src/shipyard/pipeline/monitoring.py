"""The monitor's HTTP routes, wired to one workspace's metrics, alarms, actions and endpoints."""

from __future__ import annotations

from starlette.routing import Route

from shipyard.monitor import create_monitor_routes
from shipyard.pipeline.workspace import Workspace


def monitor_routes(workspace: Workspace) -> list[Route]:
    """Metrics, alarms, the Alertmanager webhook, endpoint rollback and history."""
    return create_monitor_routes(
        metrics=workspace.metrics,
        alarms=workspace.alarms,
        actions=workspace.actions,
        traffic=workspace.endpoints,
        meta=workspace.meta,
    )
