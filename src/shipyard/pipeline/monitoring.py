"""The monitor's HTTP routes, wired to one workspace's metrics, alarms, actions, endpoints and
monitoring schedules."""

from __future__ import annotations

from starlette.routing import Route

from shipyard.monitor import create_monitor_routes, create_schedule_routes
from shipyard.pipeline.workspace import Workspace


def monitor_routes(workspace: Workspace) -> list[Route]:
    """Metrics, alarms, the Alertmanager webhook, endpoint rollback and history, and
    monitoring schedules."""
    return [
        *create_monitor_routes(
            metrics=workspace.metrics,
            alarms=workspace.alarms,
            actions=workspace.actions,
            traffic=workspace.endpoints,
            meta=workspace.meta,
        ),
        *create_schedule_routes(workspace.monitoring),
    ]
