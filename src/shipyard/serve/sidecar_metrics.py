"""Prometheus counters of what endpoints do beside answering: shadow copies, data capture,
multi-model loads. Read from the live counters at each scrape.

With worker processes the counters live where the traffic is, in the workers. Each worker
sends :func:`sidecar_counts` snapshots to the supervisor over the metrics channel, and
:class:`WorkerSidecarCounts` adds what grew since a worker's last snapshot to the supervisor's
own counters, so ``/metrics`` and DescribeEndpoint there show totals across workers. Multi-model
caches are state, not counters: a worker sends :func:`cache_states`, which replace its last.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from shipyard.serve.endpoints import EndpointService
from shipyard.serve.multimodel import EVICTIONS_SENT, CacheState, cache_state

# ("capture" | "shadow", endpoint, variant) -> the counters in the order of _CAPTURE / _SHADOW
SidecarCounts = dict[tuple[str, str, str], tuple[float, ...]]
_CAPTURE: tuple[str, ...] = ("captured", "dropped", "errors", "files")
_SHADOW: tuple[str, ...] = ("sent", "succeeded", "errors", "dropped", "latency_s_total")


def sidecar_counts(service: EndpointService) -> SidecarCounts:
    """This process's shadow and capture counters, as plain (picklable) numbers."""
    counts: SidecarCounts = {}
    for (endpoint, variant), stats in list(service.capture.stats.items()):
        counts["capture", endpoint, variant] = tuple(float(getattr(stats, n)) for n in _CAPTURE)
    for name in service.serving:
        sidecars = service.sidecars(name)
        shadow = None if sidecars is None else sidecars.shadow
        if shadow is not None:
            values = tuple(float(getattr(shadow.stats, n)) for n in _SHADOW)
            counts["shadow", name, shadow.name] = values
    return counts


def cache_states(service: EndpointService) -> dict[str, CacheState]:
    """This process's multi-model caches, by endpoint (plain, picklable values)."""
    states = {}
    for name in service.serving:
        sidecars = service.sidecars(name)
        if sidecars is not None and sidecars.multi is not None:
            states[name] = cache_state(sidecars.multi, EVICTIONS_SENT)
    return states


class WorkerSidecarCounts:
    """The supervisor's end: folds each worker's snapshots into ``service``'s counters.

    Snapshots are cumulative, so one lost or late is made up by the next. A counter that went
    down means the worker rebuilt that sidecar (a config update): its new count is all growth.
    A shadow the supervisor does not hold (it is being replaced) misses that growth.
    """

    def __init__(self, service: EndpointService) -> None:
        self.service = service
        self._last: dict[int, SidecarCounts] = {}

    def apply(self, pid: int, counts: SidecarCounts) -> None:
        before = self._last.get(pid, {})
        self._last[pid] = counts
        for key, values in counts.items():
            previous = before.get(key, ())
            growth = [
                now if i >= len(previous) or now < previous[i] else now - previous[i]
                for i, now in enumerate(values)
            ]
            if any(growth):
                self._add(key, growth)

    def _add(self, key: tuple[str, str, str], growth: list[float]) -> None:
        kind, endpoint, variant = key
        if kind == "capture":
            stats: object = self.service.capture.counters(endpoint, variant)
            names = _CAPTURE
        else:
            sidecars = self.service.sidecars(endpoint)
            shadow = None if sidecars is None else sidecars.shadow
            if shadow is None or shadow.name != variant:
                return
            stats, names = shadow.stats, _SHADOW
        for name, value in zip(names, growth, strict=True):
            current = getattr(stats, name)
            setattr(stats, name, current + (value if isinstance(current, float) else int(value)))


class SidecarMetricsCollector:
    """A ``prometheus_client`` collector over an :class:`EndpointService`'s sidecars."""

    def __init__(self, service: EndpointService) -> None:
        self.service = service

    def describe(self) -> list[Metric]:
        return []  # the series depend on which endpoints serve; nothing to declare up front

    def collect(self) -> Iterator[Metric]:
        labels = ["endpoint", "variant", "outcome"]
        shadow = CounterMetricFamily(
            "shipyard_shadow_requests",
            "Copies of requests sent to shadow variants: sent, succeeded, error, dropped.",
            labels=labels,
        )
        shadow_latency = CounterMetricFamily(
            "shipyard_shadow_latency_seconds",
            "Time shadow variants spent scoring the copies that succeeded.",
            labels=["endpoint", "variant"],
        )
        capture = CounterMetricFamily(
            "shipyard_capture_records",
            "Data capture records: captured, dropped (buffer full), error; and files written.",
            labels=labels,
        )
        loaded = GaugeMetricFamily(
            "shipyard_multimodel_loaded_models",
            "Models a multi-model endpoint holds loaded.",
            labels=["endpoint"],
        )
        for name in self.service.serving:
            sidecars = self.service.sidecars(name)
            if sidecars is None:
                continue
            if sidecars.shadow is not None:
                stats, variant = sidecars.shadow.stats, sidecars.shadow.name
                for outcome, value in (
                    ("sent", stats.sent), ("succeeded", stats.succeeded),
                    ("error", stats.errors), ("dropped", stats.dropped),
                ):  # fmt: skip
                    shadow.add_metric([name, variant, outcome], value)
                shadow_latency.add_metric([name, variant], stats.latency_s_total)
            if sidecars.multi is not None:
                state = self.service.worker_caches.combined(name, sidecars.multi)
                loaded.add_metric([name], 0 if state is None else len(state.loaded))
        for (endpoint, variant), counts in sorted(self.service.capture.stats.items()):
            for outcome, value in (
                ("captured", counts.captured), ("dropped", counts.dropped),
                ("error", counts.errors), ("file", counts.files),
            ):  # fmt: skip
                capture.add_metric([endpoint, variant, outcome], value)
        yield from (shadow, shadow_latency, capture, loaded)
