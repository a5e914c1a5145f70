"""Observability and rollback: metrics, CloudWatch-style alarms and the rollback controller."""

from __future__ import annotations

from shipyard.monitor.actions import AlarmActions, AlarmNotice
from shipyard.monitor.alarm_format import load_alarm_file, spec_from_dict, spec_to_dict
from shipyard.monitor.alarm_manager import AlarmManager, AlarmStatus
from shipyard.monitor.alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    STATES,
    AlarmSpec,
    Transition,
    check_alarm_name,
    decide,
)
from shipyard.monitor.api import create_monitor_routes
from shipyard.monitor.cron import ScheduleExpression
from shipyard.monitor.drift import ColumnDrift, DriftDetector, DriftReport, detect_drift
from shipyard.monitor.drift_report import drift_violations, render_drift_html, write_drift_outputs
from shipyard.monitor.guardrail import DeploymentGuardrail
from shipyard.monitor.history import EndpointChange, endpoint_history
from shipyard.monitor.metrics import METRICS, Datapoint, MetricsStore
from shipyard.monitor.prometheus import (
    EndpointMetricsCollector,
    alertmanager_config,
    prometheus_rules,
)
from shipyard.monitor.quality import (
    binary_quality,
    check_constraints,
    join_labels,
    quality_by_window,
    quality_statistics,
    suggest_constraints,
)
from shipyard.monitor.rollback import RollbackController, RollbackOutcome
from shipyard.monitor.schedule import (
    DATA_DRIFT,
    MODEL_QUALITY,
    Execution,
    MonitoringSchedule,
    MonitoringScheduler,
)
from shipyard.monitor.schedule_api import create_schedule_routes

__all__ = [
    "DeploymentGuardrail",
    "DATA_DRIFT",
    "MODEL_QUALITY",
    "ColumnDrift",
    "DriftDetector",
    "DriftReport",
    "Execution",
    "MonitoringSchedule",
    "MonitoringScheduler",
    "ScheduleExpression",
    "binary_quality",
    "check_constraints",
    "detect_drift",
    "drift_violations",
    "join_labels",
    "quality_by_window",
    "quality_statistics",
    "render_drift_html",
    "suggest_constraints",
    "write_drift_outputs",
    "ALARM",
    "INSUFFICIENT_DATA",
    "METRICS",
    "OK",
    "STATES",
    "AlarmActions",
    "AlarmManager",
    "AlarmNotice",
    "AlarmSpec",
    "AlarmStatus",
    "Datapoint",
    "EndpointChange",
    "EndpointMetricsCollector",
    "MetricsStore",
    "RollbackController",
    "RollbackOutcome",
    "Transition",
    "alertmanager_config",
    "check_alarm_name",
    "create_monitor_routes",
    "create_schedule_routes",
    "decide",
    "endpoint_history",
    "load_alarm_file",
    "prometheus_rules",
    "spec_from_dict",
    "spec_to_dict",
]
