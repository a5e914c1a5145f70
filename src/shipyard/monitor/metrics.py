"""Embedded per-second time series per endpoint and variant, queryable with CloudWatch statistics.

Invocation metrics follow SageMaker's: every request emits one sample of each, so
``Invocations`` is 1, ``Invocation4XXErrors``/``Invocation5XXErrors`` are 0 or 1 (their
``Average`` is the error rate), ``ModelLatency``/``OverheadLatency`` are microseconds. Other
components publish any other named metric (a drift score, a monitor verdict) with :meth:`put`.

Besides the windows kept for queries, the store keeps running totals and latency histograms for
Prometheus (:meth:`MetricsStore.snapshot`), which never expire.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from shipyard.core.errors import InvalidRequestError
from shipyard.core.types import Invocation
from shipyard.monitor.statistics import Samples, check_statistic, statistic_of

INVOCATIONS = "Invocations"
ERRORS_4XX = "Invocation4XXErrors"
ERRORS_5XX = "Invocation5XXErrors"
MODEL_LATENCY = "ModelLatency"
OVERHEAD_LATENCY = "OverheadLatency"
UNSEEN_CATEGORIES = "UnseenCategoryValues"
METRICS = (INVOCATIONS, ERRORS_4XX, ERRORS_5XX, MODEL_LATENCY, OVERHEAD_LATENCY, UNSEEN_CATEGORIES)
UNITS = {MODEL_LATENCY: "Microseconds", OVERHEAD_LATENCY: "Microseconds"}
# Seconds; 0.15 is there so "p99 above 150 ms" reads straight off a bucket.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_T = TypeVar("_T")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,254}")


@dataclass(frozen=True)
class Datapoint:
    """One period of one metric: its statistics and how many requests the period saw."""

    start_s: float
    sample_count: int
    requests: int
    values: dict[str, float]
    unit: str


@dataclass
class _Second:
    """One second of one variant's requests."""

    count: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    unseen: int = 0
    errors_5xx_by_version: dict[str, int] = field(default_factory=dict)
    model_us: array[float] = field(default_factory=lambda: array("d"))
    overhead_us: array[float] = field(default_factory=lambda: array("d"))


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    total_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.total_s += seconds


@dataclass
class _Named:
    """A published metric: its samples per second, and the last value (for Prometheus)."""

    unit: str
    seconds: dict[int, array[float]] = field(default_factory=dict)
    last: float = 0.0


@dataclass
class _Series:
    """Everything one endpoint variant has recorded."""

    seconds: dict[int, _Second] = field(default_factory=dict)
    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    unseen: int = 0
    model_latency: _Histogram = field(default_factory=_Histogram)
    overhead_latency: _Histogram = field(default_factory=_Histogram)
    named: dict[str, _Named] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesTotals:
    """Running totals of one endpoint variant since the server started (Prometheus counters)."""

    endpoint: str
    variant: str
    invocations: int
    errors_4xx: int
    errors_5xx: int
    unseen: int
    model_latency_buckets: tuple[int, ...]  # per bucket of LATENCY_BUCKETS_S, then +Inf
    model_latency_sum_s: float
    overhead_latency_buckets: tuple[int, ...]
    overhead_latency_sum_s: float
    named: dict[str, float]


def check_metric_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"metric name {name!r} must start with a letter and hold 1-255 letters, digits "
            "and . _ : -"
        )
    return name


class MetricsStore:
    """Keeps the last ``retention_s`` seconds in memory; implements ``MetricsSink``."""

    def __init__(self, retention_s: int = 3600) -> None:
        self.retention_s = retention_s
        self._series: dict[tuple[str, str], _Series] = {}
        self._lock = threading.Lock()

    # writing ----------------------------------------------------------------------------

    def record(self, invocation: Invocation) -> None:
        """One served request (called by serving for every request, whatever its outcome)."""
        second = int(invocation.at_s)
        with self._lock:
            series = self._series_of(invocation.endpoint, invocation.variant)
            bucket = series.seconds.get(second)
            if bucket is None:
                bucket = series.seconds[second] = _Second()
                self._prune(series.seconds, second)
            bucket.count += 1
            series.invocations += 1
            if 400 <= invocation.status < 500:
                bucket.errors_4xx += 1
                series.errors_4xx += 1
            elif invocation.status >= 500:
                bucket.errors_5xx += 1
                series.errors_5xx += 1
                by_version = bucket.errors_5xx_by_version
                by_version[invocation.model_version] = (
                    by_version.get(invocation.model_version, 0) + 1
                )
            bucket.unseen += invocation.unseen_categories
            series.unseen += invocation.unseen_categories
            bucket.model_us.append(invocation.model_latency_us)
            bucket.overhead_us.append(invocation.overhead_latency_us)
            series.model_latency.observe(invocation.model_latency_us / 1e6)
            series.overhead_latency.observe(invocation.overhead_latency_us / 1e6)

    def put(
        self,
        metric: str,
        value: float,
        *,
        endpoint: str,
        variant: str | None = None,
        at_s: float | None = None,
        unit: str = "None",
    ) -> None:
        """Publish one sample of a named metric (a monitor result, a drift score...)."""
        check_metric_name(metric)
        if metric in METRICS:
            raise InvalidRequestError(
                f"{metric!r} is recorded from served requests; publish under another name"
            )
        number = float(value)
        second = int(time.time() if at_s is None else at_s)
        with self._lock:
            series = self._series_of(endpoint, variant or "")
            named = series.named.get(metric)
            if named is None:
                named = series.named[metric] = _Named(unit)
            samples = named.seconds.get(second)
            if samples is None:
                samples = named.seconds[second] = array("d")
                self._prune(named.seconds, second)
            samples.append(number)
            named.last = number

    # reading ----------------------------------------------------------------------------

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
        """The statistic over [start_s, end_s); None when no sample fell in the window."""
        check_statistic(statistic)
        samples = self._samples(metric, endpoint, variant, start_s, end_s)
        return None if samples is None else statistic_of(samples, statistic)

    def datapoint(
        self,
        metric: str,
        statistics: Iterable[str],
        *,
        endpoint: str,
        variant: str | None,
        start_s: float,
        end_s: float,
    ) -> Datapoint | None:
        """Several statistics of one window, with its sample and request counts."""
        wanted = [check_statistic(s) for s in statistics]
        samples = self._samples(metric, endpoint, variant, start_s, end_s)
        if samples is None:
            return None
        return Datapoint(
            start_s=start_s,
            sample_count=samples.count,
            requests=self.requests(
                endpoint=endpoint, variant=variant, start_s=start_s, end_s=end_s
            ),
            values={s: statistic_of(samples, s) for s in wanted},
            unit=self.unit(metric, endpoint=endpoint, variant=variant),
        )

    def datapoints(
        self,
        metric: str,
        statistics: Iterable[str],
        *,
        endpoint: str,
        variant: str | None,
        period_s: int,
        start_s: float,
        end_s: float,
    ) -> list[Datapoint]:
        """GetMetricStatistics: a datapoint per period that has samples (epoch-aligned periods)."""
        wanted = list(statistics)
        first = int(start_s) // period_s * period_s
        found = []
        for begin in range(first, int(end_s), period_s):
            point = self.datapoint(
                metric, wanted, endpoint=endpoint, variant=variant,
                start_s=begin, end_s=begin + period_s,
            )  # fmt: skip
            if point is not None:
                found.append(point)
        return found

    def requests(self, *, endpoint: str, variant: str | None, start_s: float, end_s: float) -> int:
        """How many requests the endpoint (or one variant) served in [start_s, end_s)."""
        with self._lock:
            return sum(b.count for b in self._seconds(endpoint, variant, start_s, end_s))

    def unit(self, metric: str, *, endpoint: str, variant: str | None) -> str:
        if metric in METRICS:
            return UNITS.get(metric, "None")
        with self._lock:
            for _, series in self._matching(endpoint, variant):
                if metric in series.named:
                    return series.named[metric].unit
        return "None"

    def error_versions(self, endpoint: str, start_s: float, end_s: float) -> dict[str, int]:
        """Model errors (5xx) per model version in [start_s, end_s): who caused an alarm."""
        totals: dict[str, int] = {}
        with self._lock:
            for bucket in self._seconds(endpoint, None, start_s, end_s):
                for version, count in bucket.errors_5xx_by_version.items():
                    totals[version] = totals.get(version, 0) + count
        return totals

    def endpoints(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._series)

    def metric_names(self, endpoint: str, variant: str | None = None) -> list[str]:
        """The built-in metrics, then every metric published for the endpoint (or variant)."""
        with self._lock:
            named = {n for _, s in self._matching(endpoint, variant) for n in s.named}
        return [*METRICS, *sorted(named)]

    def snapshot(self) -> list[SeriesTotals]:
        """Running totals of every endpoint variant, for the Prometheus exposition."""
        with self._lock:
            return [
                SeriesTotals(
                    endpoint,
                    variant,
                    s.invocations,
                    s.errors_4xx,
                    s.errors_5xx,
                    s.unseen,
                    tuple(s.model_latency.counts),
                    s.model_latency.total_s,
                    tuple(s.overhead_latency.counts),
                    s.overhead_latency.total_s,
                    {name: named.last for name, named in s.named.items()},
                )  # fmt: skip
                for (endpoint, variant), s in sorted(self._series.items())
            ]

    # internals --------------------------------------------------------------------------

    def _series_of(self, endpoint: str, variant: str) -> _Series:
        series = self._series.get((endpoint, variant))
        if series is None:
            series = self._series[(endpoint, variant)] = _Series()
        return series

    def _matching(self, endpoint: str, variant: str | None) -> Iterator[tuple[str, _Series]]:
        for (ep, var), series in self._series.items():
            if ep == endpoint and (variant is None or var == variant):
                yield var, series

    def _seconds(
        self, endpoint: str, variant: str | None, start_s: float, end_s: float
    ) -> list[_Second]:
        return [
            bucket
            for _, series in self._matching(endpoint, variant)
            for bucket in _window(series.seconds, start_s, end_s)
        ]

    def _samples(
        self, metric: str, endpoint: str, variant: str | None, start_s: float, end_s: float
    ) -> Samples | None:
        with self._lock:
            if metric not in METRICS:
                check_metric_name(metric)
                chunks = [
                    chunk
                    for _, series in self._matching(endpoint, variant)
                    if metric in series.named
                    for chunk in _window(series.named[metric].seconds, start_s, end_s)
                ]
                return Samples.of_values(chunks)
            buckets = self._seconds(endpoint, variant, start_s, end_s)
            count = sum(b.count for b in buckets)
            if count == 0:
                return None
            if metric == INVOCATIONS:
                return Samples.of_flags(count, count)
            if metric == ERRORS_4XX:
                return Samples.of_flags(count, sum(b.errors_4xx for b in buckets))
            if metric == ERRORS_5XX:
                return Samples.of_flags(count, sum(b.errors_5xx for b in buckets))
            if metric == UNSEEN_CATEGORIES:
                return Samples.of_total(count, float(sum(b.unseen for b in buckets)))
            latency = [b.model_us if metric == MODEL_LATENCY else b.overhead_us for b in buckets]
            return Samples.of_values(latency)

    def _prune(self, seconds: dict[int, _T], now: int) -> None:
        # Seconds arrive (nearly) in order, so the oldest sit at the front of the dict.
        horizon = now - self.retention_s
        while seconds:
            oldest = next(iter(seconds))
            if oldest >= horizon:
                break
            del seconds[oldest]


def _window(seconds: dict[int, _T], start_s: float, end_s: float) -> list[_T]:
    first, last = int(start_s), int(end_s)
    if start_s > first:
        first += 1  # a second belongs to the window only if it starts inside it
    if end_s > last:
        last += 1
    if last - first <= len(seconds):
        return [seconds[s] for s in range(first, last) if s in seconds]
    return [bucket for s, bucket in seconds.items() if first <= s < last]
