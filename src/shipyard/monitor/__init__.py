"""Observability and rollback: metrics, CloudWatch-style alarms and the rollback controller."""

from __future__ import annotations

from shipyard.monitor.alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmManager,
    AlarmSpec,
    Transition,
    decide,
)
from shipyard.monitor.metrics import METRICS, MetricsStore
from shipyard.monitor.rollback import RollbackController, RollbackOutcome

__all__ = [
    "ALARM",
    "INSUFFICIENT_DATA",
    "METRICS",
    "OK",
    "AlarmManager",
    "AlarmSpec",
    "MetricsStore",
    "RollbackController",
    "RollbackOutcome",
    "Transition",
    "decide",
]
