"""Shipyard's metrics for Prometheus, and alarms rewritten as Prometheus alerting rules.

Exposed on ``/metrics`` (Prometheus naming; counters and histograms run from server start):

====================================================  =============================================
``shipyard_invocations_total{endpoint,variant}``      requests served
``shipyard_invocation_errors_total{...,code}``        ``code="4xx"`` bad requests, ``"5xx"`` model
                                                      errors (both always present, from 0)
``shipyard_model_latency_seconds{endpoint,variant}``  histogram of ModelLatency
``shipyard_overhead_latency_seconds{...}``            histogram of OverheadLatency
``shipyard_unseen_category_values_total{...}``        categories the model never saw in training
``shipyard_metric_value{endpoint,variant,metric}``    last value of each published metric
====================================================  =============================================

A rule is equivalent to an alarm where PromQL can say the same thing: the statistic over one
period becomes a rate over a window of ``max(period, 4 x scrape interval)`` (a rate needs
several scrapes), scaled back to one period; M of N periods becomes ``for: period x N`` (in
Prometheus the condition must hold that long without a break: N of N). ``min_requests`` becomes
an ``and`` on the request count; ``treat_missing_data: breaching`` an ``or`` on no traffic; the
other treatments need nothing, since a rule without data does not fire. Minimum and Maximum of
latencies (a histogram keeps neither) have no equivalent and are reported as skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from shipyard.core.errors import InvalidRequestError
from shipyard.monitor.alarms import ROLLBACK, AlarmSpec
from shipyard.monitor.metrics import (
    ERRORS_4XX,
    ERRORS_5XX,
    INVOCATIONS,
    LATENCY_BUCKETS_S,
    METRICS,
    MODEL_LATENCY,
    OVERHEAD_LATENCY,
    UNSEEN_CATEGORIES,
    MetricsStore,
)
from shipyard.monitor.statistics import is_percentile

INVOCATIONS_TOTAL = "shipyard_invocations_total"
ERRORS_TOTAL = "shipyard_invocation_errors_total"
UNSEEN_TOTAL = "shipyard_unseen_category_values_total"
METRIC_VALUE = "shipyard_metric_value"
_HISTOGRAMS = {
    MODEL_LATENCY: "shipyard_model_latency_seconds",
    OVERHEAD_LATENCY: "shipyard_overhead_latency_seconds",
}
_OPERATORS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}
GROUP = "shipyard-alarms"


class EndpointMetricsCollector:
    """A ``prometheus_client`` collector reading a :class:`MetricsStore` at each scrape."""

    def __init__(self, store: MetricsStore) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        return []  # the series depend on which endpoints served; nothing to declare up front

    def collect(self) -> Iterator[Metric]:
        labels = ["endpoint", "variant"]
        invocations = CounterMetricFamily(
            "shipyard_invocations", "Requests served per endpoint variant.", labels=labels
        )
        errors = CounterMetricFamily(
            "shipyard_invocation_errors",
            "Requests answered with an error: code 4xx (the request) or 5xx (the model).",
            labels=[*labels, "code"],
        )
        unseen = CounterMetricFamily(
            "shipyard_unseen_category_values",
            "Category values the model never saw in training.",
            labels=labels,
        )
        histograms = {
            metric: HistogramMetricFamily(name, f"{metric} in seconds.", labels=labels)
            for metric, name in _HISTOGRAMS.items()
        }
        values = GaugeMetricFamily(
            "shipyard_metric_value",
            "Last value of each metric published by a component (e.g. a monitor result).",
            labels=[*labels, "metric"],
        )
        for series in self.store.snapshot():
            key = [series.endpoint, series.variant]
            invocations.add_metric(key, series.invocations)
            errors.add_metric([*key, "4xx"], series.errors_4xx)
            errors.add_metric([*key, "5xx"], series.errors_5xx)
            unseen.add_metric(key, series.unseen)
            for metric, counts, total in (
                (MODEL_LATENCY, series.model_latency_buckets, series.model_latency_sum_s),
                (OVERHEAD_LATENCY, series.overhead_latency_buckets, series.overhead_latency_sum_s),
            ):
                histograms[metric].add_metric(key, _cumulative(counts), total)
            for name, value in sorted(series.named.items()):
                values.add_metric([*key, name], value)
        yield from (invocations, errors, unseen, *histograms.values(), values)


def _cumulative(counts: Sequence[int]) -> list[tuple[str, float]]:
    buckets, running = [], 0
    for bound, count in zip([*map(str, LATENCY_BUCKETS_S), "+Inf"], counts, strict=True):
        running += count
        buckets.append((bound, float(running)))
    return buckets


# alerting rules -------------------------------------------------------------------------


def prometheus_rules(
    specs: Sequence[AlarmSpec], *, scrape_interval_s: float = 15.0
) -> tuple[dict[str, Any], list[str]]:
    """A Prometheus rules file (as a document) for ``specs``, and why any alarm was skipped."""
    rules, skipped = [], []
    for spec in specs:
        try:
            rules.append(alert_rule(spec, scrape_interval_s=scrape_interval_s))
        except InvalidRequestError as exc:
            skipped.append(str(exc))
    return {"groups": [{"name": GROUP, "rules": rules}]}, skipped


def alert_rule(spec: AlarmSpec, *, scrape_interval_s: float = 15.0) -> dict[str, Any]:
    """One alerting rule equivalent to ``spec`` (see the module docstring)."""
    window_s = max(spec.period_s, int(round(4 * scrape_interval_s)))
    labels = {"endpoint": spec.endpoint, "alarm": spec.name, "severity": _severity(spec)}
    if spec.variant:
        labels["variant"] = spec.variant
    if ROLLBACK in spec.actions and spec.actions_enabled:
        labels["action"] = ROLLBACK
    summary = f"Shipyard alarm {spec.name}: {spec.describe_rule()}"
    return {
        "alert": alert_name(spec.name),
        "expr": alert_expression(spec, window_s),
        "for": f"{spec.period_s * spec.evaluation_periods}s",
        "labels": labels,
        "annotations": {
            "summary": summary,
            "description": spec.description or summary,
            "shipyard_alarm": spec.name,
            **({"action": ROLLBACK} if "action" in labels else {}),
        },
    }


def alert_name(alarm: str) -> str:
    """A valid Prometheus alert name: 'fraud-p99-latency' -> 'ShipyardFraudP99Latency'."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", alarm) if p]
    return "Shipyard" + "".join(p[0].upper() + p[1:] for p in parts)


def alert_expression(spec: AlarmSpec, window_s: int) -> str:
    selector = _selector(spec)
    expression = f"({_value(spec, selector, window_s)}) {_OPERATORS[spec.comparison]} "
    expression += repr(float(spec.threshold))
    per_period = f"sum(increase({INVOCATIONS_TOTAL}{{{selector}}}[{window_s}s]))"
    per_period += f" * {spec.period_s} / {window_s}"
    if spec.min_requests:
        expression = f"({expression}) and on() ({per_period} >= {spec.min_requests})"
    if spec.treat_missing_data == "breaching":
        quiet = (
            f"({per_period} < {max(1, spec.min_requests)}) or on() "
            f"absent_over_time({INVOCATIONS_TOTAL}{{{selector}}}[{window_s}s])"
        )
        if spec.metric not in METRICS:
            quiet = f"absent_over_time({METRIC_VALUE}{{{_custom(spec, selector)}}}[{window_s}s])"
        expression = f"({expression}) or on() ({quiet})"
    return expression


def _value(spec: AlarmSpec, selector: str, w: int) -> str:
    """PromQL for ``spec.statistic`` of ``spec.metric`` over one period."""
    metric, statistic, period = spec.metric, spec.statistic, spec.period_s

    def per_period(series: str) -> str:
        return f"sum(rate({series}[{w}s])) * {period}"

    requests = f"{INVOCATIONS_TOTAL}{{{selector}}}"
    if metric == INVOCATIONS and statistic in ("Sum", "SampleCount"):
        return per_period(requests)
    if metric in (ERRORS_4XX, ERRORS_5XX):
        code = "4xx" if metric == ERRORS_4XX else "5xx"
        errors = f'{ERRORS_TOTAL}{{{selector},code="{code}"}}'
        if statistic == "Average":
            return f"sum(rate({errors}[{w}s])) / sum(rate({requests}[{w}s]))"
        if statistic == "Sum":
            return per_period(errors)
        if statistic == "SampleCount":
            return per_period(requests)
    if metric in _HISTOGRAMS:
        histogram = _HISTOGRAMS[metric]
        if is_percentile(statistic):
            quantile = float(statistic[1:]) / 100
            buckets = f"sum by (le) (rate({histogram}_bucket{{{selector}}}[{w}s]))"
            return f"histogram_quantile({quantile!r}, {buckets}) * 1e6"  # CloudWatch's µs
        if statistic == "Average":
            return (
                f"sum(rate({histogram}_sum{{{selector}}}[{w}s])) / "
                f"sum(rate({histogram}_count{{{selector}}}[{w}s])) * 1e6"
            )
        if statistic == "Sum":
            return per_period(f"{histogram}_sum{{{selector}}}") + " * 1e6"
        if statistic == "SampleCount":
            return per_period(f"{histogram}_count{{{selector}}}")
    if metric == UNSEEN_CATEGORIES:
        unseen = f"{UNSEEN_TOTAL}{{{selector}}}"
        if statistic == "Sum":
            return per_period(unseen)
        if statistic == "Average":
            return f"sum(rate({unseen}[{w}s])) / sum(rate({requests}[{w}s]))"
    if metric not in METRICS:
        gauge = f"{METRIC_VALUE}{{{_custom(spec, selector)}}}"
        over_time = {"Average": "avg", "Maximum": "max", "Minimum": "min"}
        if statistic in over_time:
            return f"max({over_time[statistic]}_over_time({gauge}[{w}s]))"
        if is_percentile(statistic):
            return f"max(quantile_over_time({float(statistic[1:]) / 100!r}, {gauge}[{w}s]))"
    raise InvalidRequestError(
        f"alarm {spec.name!r}: {statistic} of {metric} has no Prometheus equivalent "
        "(a histogram keeps no minimum or maximum); skipped"
    )


def _selector(spec: AlarmSpec) -> str:
    matchers = [f'endpoint="{_escape(spec.endpoint)}"']
    if spec.variant:
        matchers.append(f'variant="{_escape(spec.variant)}"')
    return ",".join(matchers)


def _custom(spec: AlarmSpec, selector: str) -> str:
    return f'{selector},metric="{_escape(spec.metric)}"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _severity(spec: AlarmSpec) -> str:
    if spec.severity:
        return spec.severity
    return "critical" if ROLLBACK in spec.actions else "warning"


def alertmanager_config(
    webhook_url: str,
    *,
    group_wait_s: float = 1.0,
    group_interval_s: float = 1.0,
    repeat_interval: str = "1h",
    bearer_token: str | None = None,
) -> dict[str, Any]:
    """An Alertmanager configuration sending every alert to Shipyard's webhook."""
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True}
    if bearer_token:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer_token}}
    return {
        "route": {
            "receiver": "shipyard",
            "group_by": ["alertname", "endpoint"],
            "group_wait": f"{group_wait_s:g}s",
            "group_interval": f"{group_interval_s:g}s",
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "shipyard", "webhook_configs": [webhook]}],
    }
