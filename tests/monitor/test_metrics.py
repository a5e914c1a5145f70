"""The embedded metrics store: CloudWatch statistics per endpoint and variant, named metrics."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.core.errors import InvalidRequestError
from shipyard.core.types import Invocation
from shipyard.monitor import MetricsStore


def _invocation(
    at_s: float, status: int = 200, latency_us: float = 1000.0, variant: str = "AllTraffic"
) -> Invocation:
    return Invocation("ep", variant, status, latency_us, 10.0, at_s, model_version="g@1")


def test_statistics_of_errors_and_latencies() -> None:
    metrics = MetricsStore()
    for i in range(100):
        metrics.record(_invocation(1000.2, 500 if i < 10 else 200, latency_us=float(i)))
    query = {"endpoint": "ep", "variant": None, "start_s": 1000, "end_s": 1001}
    assert metrics.query("Invocation5XXErrors", "Average", **query) == pytest.approx(0.1)
    assert metrics.query("Invocation5XXErrors", "Sum", **query) == 10
    assert metrics.query("Invocation5XXErrors", "Maximum", **query) == 1.0
    assert metrics.query("Invocation5XXErrors", "Minimum", **query) == 0.0
    assert metrics.query("Invocation5XXErrors", "p95", **query) == 1.0
    assert metrics.query("Invocation5XXErrors", "p50", **query) == 0.0
    assert metrics.query("Invocation4XXErrors", "Sum", **query) == 0
    assert metrics.query("Invocations", "Sum", **query) == 100
    assert metrics.query("Invocations", "SampleCount", **query) == 100
    assert metrics.query("ModelLatency", "p99", **query) == 99.0
    assert metrics.query("ModelLatency", "p50", **query) == 50.0
    assert metrics.query("ModelLatency", "Maximum", **query) == 99.0
    assert metrics.query("ModelLatency", "Average", **query) == pytest.approx(49.5)
    assert metrics.query("Invocations", "Sum", **{**query, "start_s": 1001, "end_s": 1002}) is None


def test_flag_percentiles_match_numpy_on_the_samples() -> None:
    metrics = MetricsStore()
    for i in range(37):
        metrics.record(_invocation(5.5, 500 if i < 9 else 200))
    samples = np.array([1.0] * 9 + [0.0] * 28)
    for p in (50, 75, 76, 90, 99.9):
        expected = float(np.percentile(samples, p, method="higher"))
        got = metrics.query(
            "Invocation5XXErrors", f"p{p}", endpoint="ep", variant=None, start_s=5, end_s=6
        )
        assert got == expected, p


def test_variants_are_separate_series_and_sum_up_per_endpoint() -> None:
    metrics = MetricsStore()
    for _ in range(3):
        metrics.record(_invocation(10.0, variant="blue"))
    metrics.record(_invocation(10.0, 500, variant="green"))
    window = {"start_s": 10, "end_s": 11}
    assert metrics.query("Invocations", "Sum", endpoint="ep", variant="blue", **window) == 3
    assert metrics.query(
        "Invocation5XXErrors", "Average", endpoint="ep", variant="green", **window
    ) == 1.0  # fmt: skip
    assert metrics.query(
        "Invocation5XXErrors", "Average", endpoint="ep", variant=None, **window
    ) == 0.25  # fmt: skip
    assert metrics.requests(endpoint="ep", variant=None, **window) == 4
    assert metrics.endpoints() == [("ep", "blue"), ("ep", "green")]


def test_windows_hold_whole_seconds_only() -> None:
    metrics = MetricsStore()
    metrics.record(_invocation(100.9))
    metrics.record(_invocation(101.0))
    count = metrics.requests
    assert count(endpoint="ep", variant=None, start_s=100, end_s=101) == 1
    assert count(endpoint="ep", variant=None, start_s=100.5, end_s=102) == 1  # 101 only
    assert count(endpoint="ep", variant=None, start_s=99, end_s=101.5) == 2


def test_published_metrics_are_queryable_like_the_built_in_ones() -> None:
    metrics = MetricsStore()
    for value in (0.1, 0.3, 0.2):
        metrics.put("feature_baseline_drift_amount", value, endpoint="ep", at_s=50.0)
    metrics.put("feature_baseline_drift_amount", 0.9, endpoint="ep", at_s=51.5)
    query = {"endpoint": "ep", "variant": None}
    name = "feature_baseline_drift_amount"
    assert metrics.query(name, "Maximum", start_s=50, end_s=51, **query) == pytest.approx(0.3)
    assert metrics.query(name, "Average", start_s=50, end_s=52, **query) == pytest.approx(0.375)
    assert metrics.query(name, "SampleCount", start_s=50, end_s=52, **query) == 4
    assert metrics.query(name, "Sum", start_s=52, end_s=60, **query) is None
    assert metrics.query("never_published", "Sum", start_s=0, end_s=100, **query) is None
    assert name in metrics.metric_names("ep")
    assert metrics.snapshot()[0].named == {name: 0.9}
    with pytest.raises(InvalidRequestError, match="recorded from served requests"):
        metrics.put("Invocations", 1.0, endpoint="ep")
    with pytest.raises(InvalidRequestError, match="metric name"):
        metrics.put("bad name", 1.0, endpoint="ep")


def test_datapoints_are_one_per_period_with_data() -> None:
    metrics = MetricsStore()
    for at in (120.5, 130.0, 139.9, 185.0):
        metrics.record(_invocation(at, latency_us=at))
    points = metrics.datapoints(
        "ModelLatency", ["Maximum", "SampleCount", "p50"], endpoint="ep", variant=None,
        period_s=60, start_s=100, end_s=240,
    )  # fmt: skip
    assert [(p.start_s, p.sample_count) for p in points] == [(120, 3), (180, 1)]
    assert points[0].values["Maximum"] == pytest.approx(139.9)
    assert points[0].requests == 3 and points[0].unit == "Microseconds"


def test_old_seconds_expire_but_running_totals_do_not() -> None:
    metrics = MetricsStore(retention_s=10)
    metrics.record(_invocation(100.0, 500, latency_us=2000.0))
    metrics.record(_invocation(200.0, 200, latency_us=200_000.0))
    assert metrics.requests(endpoint="ep", variant=None, start_s=0, end_s=150) == 0
    [totals] = metrics.snapshot()
    assert (totals.invocations, totals.errors_5xx, totals.errors_4xx) == (2, 1, 0)
    assert sum(totals.model_latency_buckets) == 2
    assert totals.model_latency_sum_s == pytest.approx(0.202)


def test_statistics_are_checked() -> None:
    metrics = MetricsStore()
    metrics.record(_invocation(1.0))
    with pytest.raises(InvalidRequestError, match="statistic 'Median'"):
        metrics.query("Invocations", "Median", endpoint="ep", variant=None, start_s=0, end_s=2)
    with pytest.raises(InvalidRequestError, match="keeps only its Sum"):
        metrics.query(
            "UnseenCategoryValues", "p99", endpoint="ep", variant=None, start_s=0, end_s=2
        )
