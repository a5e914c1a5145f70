"""Monitoring schedules in a workspace: results go to its metrics, alarms can start a run.

The scheduler publishes every execution's metrics (``feature_baseline_drift_<feature>``,
``monitor_violations``, the quality metrics) to the workspace's metrics store, so an alarm can
watch a monitor's verdict as it watches error rates, and roll back long after a rollout.

``pipeline:monitor`` is registered out of the box: an alarm with that action runs, at once,
every monitoring schedule of the alarm's endpoint (e.g. a drift check when errors climb).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.core.errors import NotFoundError
from shipyard.monitor import AlarmNotice, Execution, MonitoringScheduler

if TYPE_CHECKING:
    from shipyard.pipeline.workspace import Workspace

MONITOR_PIPELINE = "monitor"


def open_monitoring(workspace: Workspace) -> MonitoringScheduler:
    """The workspace's scheduler, publishing to its metrics; registers ``pipeline:monitor``."""
    scheduler = MonitoringScheduler(workspace.meta, workspace.store, publish=workspace.metrics.put)

    def run_monitors(notice: AlarmNotice) -> list[Execution]:
        return run_endpoint_schedules(scheduler, notice.spec.endpoint)

    workspace.actions.register_pipeline(MONITOR_PIPELINE, run_monitors)
    return scheduler


def run_endpoint_schedules(scheduler: MonitoringScheduler, endpoint: str) -> list[Execution]:
    """Run every schedule whose results belong to ``endpoint`` now, in name order."""
    mine = [s for s in scheduler.schedules() if (s.endpoint or s.name) == endpoint]
    if not mine:
        raise NotFoundError(
            f"no monitoring schedule reports on endpoint {endpoint!r}; create one with "
            f"`shipyard monitor schedules create ... --endpoint {endpoint}`"
        )
    return [scheduler.run_now(s.name) for s in mine]
