"""One monitoring job's work: read the window's data, check it, write the report files.

A job returns its violations, the URLs of what it wrote and the metrics to publish, named as
SageMaker's monitors name theirs (``feature_baseline_drift_<feature>``, the model-quality metric
names) plus ``monitor_violations``, the number of violations of the execution.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from shipyard.core.errors import DataError
from shipyard.monitor._data import Data, scan, schema
from shipyard.monitor.drift import DriftDetector, DriftReport
from shipyard.monitor.drift_report import write_drift_outputs
from shipyard.monitor.quality import (
    check_constraints,
    join_labels,
    quality_by_window,
    quality_statistics,
)
from shipyard.monitor.quality_report import write_quality_outputs
from shipyard.storage import ObjectStore

VIOLATIONS_METRIC = "monitor_violations"
_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")

Window = tuple[datetime, datetime]  # [start, end) of the data a job analyses


@dataclass(frozen=True)
class JobResult:
    """What an execution found and where it wrote it."""

    violations: int
    outputs: dict[str, str]
    metrics: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)
    drift: DriftReport | None = None


def run_drift_job(
    store: ObjectStore,
    prefix: str,
    *,
    reference: Data,
    current: Data,
    columns: Sequence[str] | None = None,
    window: Window | None = None,
    time_column: str = "event_time",
) -> JobResult:
    """Test ``current`` (only rows inside ``window``, when given) for drift from ``reference``."""
    started = time.perf_counter()
    current_rows = _in_window(scan(current, "current"), window, time_column, "current")
    detector = DriftDetector(columns).fit(reference)
    fitted_s = time.perf_counter()
    report = detector.score(current_rows)
    if report.current_rows == 0:
        raise DataError(f"no current rows to check{_window_text(window)}")
    timings = {"fit_reference": fitted_s - started, "score_current": time.perf_counter() - fitted_s}
    extra = {"window": _window_dict(window), "timings_s": timings}
    outputs = write_drift_outputs(report, store, prefix, extra=extra)
    metrics = {
        f"feature_baseline_drift_{_metric_safe(c.name)}": c.statistic
        for c in report.columns
        if c.statistic == c.statistic  # NaN has no place in a time series
    }
    metrics[VIOLATIONS_METRIC] = float(len(report.drifted))
    summary = {
        "dataset_drift": report.dataset_drift,
        "drifted": [c.name for c in report.drifted],
        "columns": len(report.columns),
        "current_rows": report.current_rows,
    }
    return JobResult(len(report.drifted), outputs, metrics, summary, report)


def run_quality_job(
    store: ObjectStore,
    prefix: str,
    *,
    predictions: Data,
    labels: Data,
    constraints: dict[str, Any] | str | Path,
    threshold: float = 0.5,
    window: Window | None = None,
    time_column: str = "event_time",
    every: str = "1h",
    key: str = "event_id",
    score: str = "score",
    label: str = "is_fraud",
) -> JobResult:
    """Model quality of the labelled predictions inside ``window`` against ``constraints``."""
    limits = _constraints(constraints)
    scanned = _in_window(scan(predictions, "predictions"), window, time_column, "predictions")
    joined = join_labels(scanned, labels, key=key, score=score, label=label)
    statistics = quality_statistics(joined.labels, joined.scores, threshold=threshold)
    violations = check_constraints(statistics, limits)
    windows = (
        quality_by_window(joined, time_column=time_column, every=every, threshold=threshold)
        if time_column in joined.frame.columns
        else []
    )
    extra = {"window": _window_dict(window), "pending_labels": joined.pending}
    outputs = write_quality_outputs(
        store,
        prefix,
        statistics=statistics,
        constraints=limits,
        violations=violations,
        windows=windows,
        extra=extra,
    )
    measured = statistics["binary_classification_metrics"]
    metrics = {name: m["value"] for name, m in measured.items() if m["value"] is not None}
    metrics[VIOLATIONS_METRIC] = float(len(violations["violations"]))
    summary = {
        "labelled": len(joined.labels),
        "pending_labels": joined.pending,
        "violated": [v["metric_name"] for v in violations["violations"]],
    }
    return JobResult(len(violations["violations"]), outputs, metrics, summary)


def _in_window(
    frame: pl.LazyFrame, window: Window | None, time_column: str, role: str
) -> pl.LazyFrame:
    if window is None:
        return frame
    found = schema(frame, role)
    if time_column not in found:
        raise DataError(f"{role} data has no time column {time_column!r} to pick the window by")
    moment, dtype = pl.col(time_column), found[time_column]
    if dtype == pl.String():
        moment = moment.str.to_datetime(time_zone="UTC", strict=False)
    elif isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        # A naive timestamp is taken as UTC, as capture and the scenario write them.
        moment = moment.dt.replace_time_zone("UTC")
    start, end = window
    return frame.filter((moment >= start) & (moment < end))


def _constraints(source: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(source, dict):
        return source
    path = Path(source)
    try:
        loaded = json.loads(path.read_text())
    except OSError as exc:
        raise DataError(f"cannot read constraints {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"constraints {path} is not JSON: {exc}") from None
    if not isinstance(loaded, dict) or "binary_classification_constraints" not in loaded:
        raise DataError(f"constraints {path} has no binary_classification_constraints")
    return loaded


def _metric_safe(name: str) -> str:
    return _METRIC_UNSAFE.sub("_", name)


def _window_dict(window: Window | None) -> dict[str, str] | None:
    if window is None:
        return None
    return {"start": window[0].isoformat(), "end": window[1].isoformat()}


def _window_text(window: Window | None) -> str:
    if window is None:
        return ""
    return f" in the window {window[0].isoformat()} to {window[1].isoformat()}"
