"""Embedded per-second time series of endpoint invocations, queryable with CloudWatch statistics."""

from __future__ import annotations

import math
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from shipyard.core.errors import InvalidRequestError
from shipyard.core.types import Invocation

METRICS = (
    "Invocations",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "ModelLatency",
    "OverheadLatency",
    "UnseenCategoryValues",
)
BASIC_STATISTICS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")


@dataclass
class _Bucket:
    """One second of one variant: a 0/1 sample per request for errors, raw latencies."""

    count: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    unseen_categories: int = 0
    errors_5xx_by_version: dict[str, int] = field(default_factory=dict)
    model_latency_us: list[float] = field(default_factory=list)
    overhead_latency_us: list[float] = field(default_factory=list)


def check_statistic(statistic: str) -> str:
    if statistic in BASIC_STATISTICS or _PERCENTILE.match(statistic):
        return statistic
    raise InvalidRequestError(
        f"statistic {statistic!r} is not one of {', '.join(BASIC_STATISTICS)} or p0..p99.9"
    )


class MetricsStore:
    """Keeps the last ``retention_s`` seconds in memory; implements ``MetricsSink``."""

    def __init__(self, retention_s: int = 3600) -> None:
        self.retention_s = retention_s
        self._buckets: dict[tuple[str, str], dict[int, _Bucket]] = defaultdict(dict)
        self._lock = threading.Lock()

    def record(self, invocation: Invocation) -> None:
        second = int(invocation.at_s)
        with self._lock:
            series = self._buckets[(invocation.endpoint, invocation.variant)]
            bucket = series.get(second)
            if bucket is None:
                bucket = series[second] = _Bucket()
                self._prune(series, second)
            bucket.count += 1
            if 400 <= invocation.status < 500:
                bucket.errors_4xx += 1
            elif invocation.status >= 500:
                bucket.errors_5xx += 1
                by_version = bucket.errors_5xx_by_version
                by_version[invocation.model_version] = (
                    by_version.get(invocation.model_version, 0) + 1
                )
            bucket.unseen_categories += invocation.unseen_categories
            bucket.model_latency_us.append(invocation.model_latency_us)
            bucket.overhead_latency_us.append(invocation.overhead_latency_us)

    def query(
        self,
        metric: str,
        statistic: str,
        *,
        endpoint: str,
        variant: str | None,
        start_s: float,
        end_s: float,
    ) -> float | None:
        """The statistic over [start_s, end_s); None when no request fell in the window."""
        if metric not in METRICS:
            raise InvalidRequestError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
        check_statistic(statistic)
        with self._lock:
            buckets = [
                bucket
                for (ep, var), series in self._buckets.items()
                if ep == endpoint and (variant is None or var == variant)
                for second, bucket in series.items()
                if start_s <= second < end_s
            ]
            count = sum(b.count for b in buckets)
            if count == 0:
                return None
            if metric == "Invocations":
                return float(count)
            if metric == "UnseenCategoryValues":
                return float(sum(b.unseen_categories for b in buckets))
            if metric in ("Invocation4XXErrors", "Invocation5XXErrors"):
                errors = sum(
                    b.errors_4xx if metric == "Invocation4XXErrors" else b.errors_5xx
                    for b in buckets
                )
                samples = np.zeros(count)
                samples[:errors] = 1.0
            else:
                attribute = (
                    "model_latency_us" if metric == "ModelLatency" else "overhead_latency_us"
                )
                samples = np.array([v for b in buckets for v in getattr(b, attribute)])
        return _statistic(samples, statistic)

    def error_versions(self, endpoint: str, start_s: float, end_s: float) -> dict[str, int]:
        """Model errors (5xx) per model version in [start_s, end_s): who caused an alarm."""
        totals: dict[str, int] = {}
        with self._lock:
            for (ep, _variant), series in self._buckets.items():
                if ep != endpoint:
                    continue
                for second, bucket in series.items():
                    if start_s <= second < end_s:
                        for version, count in bucket.errors_5xx_by_version.items():
                            totals[version] = totals.get(version, 0) + count
        return totals

    def endpoints(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._buckets)

    def _prune(self, series: dict[int, _Bucket], now: int) -> None:
        horizon = now - self.retention_s
        for second in [s for s in series if s < horizon]:
            del series[second]


def _statistic(samples: np.ndarray, statistic: str) -> float:
    if statistic == "Sum":
        return float(samples.sum())
    if statistic == "Average":
        return float(samples.mean())
    if statistic == "Minimum":
        return float(samples.min())
    if statistic == "Maximum":
        return float(samples.max())
    if statistic == "SampleCount":
        return float(len(samples))
    percentile = float(statistic[1:])
    value = float(np.percentile(samples, percentile, method="higher"))
    return value if math.isfinite(value) else 0.0
