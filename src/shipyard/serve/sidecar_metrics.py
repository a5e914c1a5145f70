"""Prometheus counters of what endpoints do beside answering: shadow copies, data capture,
multi-model loads. Read from the live counters at each scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from shipyard.serve.endpoints import EndpointService


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
            if sidecars.multi is not None:
                loaded.add_metric([name], len(sidecars.multi.loaded))
        for (endpoint, variant), counts in sorted(self.service.capture.stats.items()):
            for outcome, value in (
                ("captured", counts.captured), ("dropped", counts.dropped),
                ("error", counts.errors), ("file", counts.files),
            ):  # fmt: skip
                capture.add_metric([endpoint, variant, outcome], value)
        yield from (shadow, capture, loaded)
