"""Prometheus metrics of ingestion: records and bytes in, rejections, lag, drain latency."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shipyard.ingest.drain import LANDING_GROUP
from shipyard.ingest.hub import StreamHub


class IngestMetrics:
    """The ingest API's and the drain worker's counters, on one registry per server."""

    def __init__(self, registry: CollectorRegistry, hub: StreamHub) -> None:
        self.records_in = Counter(
            "shipyard_ingest_records", "Records acknowledged (durable).", ["stream"],
            registry=registry,
        )  # fmt: skip
        self.bytes_in = Counter(
            "shipyard_ingest_bytes", "Bytes of acknowledged records.", ["stream"],
            registry=registry,
        )  # fmt: skip
        self.rejected = Counter(
            "shipyard_ingest_rejected_records", "Records refused, by reason.",
            ["stream", "reason"], registry=registry,
        )  # fmt: skip
        self.backpressure = Counter(
            "shipyard_ingest_backpressure_events",
            "Requests answered 503 because the stream's drain lagged.", ["stream"],
            registry=registry,
        )  # fmt: skip
        self.drain_seconds = Histogram(
            "shipyard_drain_duration_seconds", "Time of one drain pass of one stream.",
            ["stream"], registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )  # fmt: skip
        self.drained = Counter(
            "shipyard_drain_records", "Records landed in the landing zone.", ["stream"],
            registry=registry,
        )  # fmt: skip
        self.trimmed = Counter(
            "shipyard_stream_trimmed_records",
            "Records dropped by retention (only ever after they landed).", ["stream"],
            registry=registry,
        )  # fmt: skip
        registry.register(_LagCollector(hub))


class _LagCollector(Collector):
    """Consumer lag, computed at scrape time from the streams' offsets."""

    def __init__(self, hub: StreamHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "shipyard_stream_consumer_lag_records",
            "Records the consumer group has not consumed yet.",
            labels=["stream", "group"],
        )
        end = GaugeMetricFamily(
            "shipyard_stream_records", "Records ever appended to the stream.", labels=["stream"]
        )
        for name in self.hub.names():
            try:
                stream = self.hub.get(name)
                ends = [stream.end_sequence(s) for s in range(stream.shard_count)]
                done = [stream.committed(LANDING_GROUP, s) for s in range(stream.shard_count)]
            except Exception:  # a stream owned elsewhere or closing: skip it this scrape
                continue
            end.add_metric([name], float(sum(ends)))
            lag.add_metric([name, LANDING_GROUP], float(sum(ends) - sum(done)))
        yield end
        yield lag
