"""Ingest: events -> durable stream (embedded, NATS JetStream, Redis Streams) -> landing zone."""

from __future__ import annotations

from shipyard.ingest.api import create_ingest_routes
from shipyard.ingest.backend import (
    ShardStatus,
    StreamBackend,
    StreamSpec,
    StreamStatus,
    StreamStore,
)
from shipyard.ingest.client import Client, DeliveryReport, Undelivered
from shipyard.ingest.drain import (
    DrainResult,
    drain_to_landing,
    read_landing,
)
from shipyard.ingest.hub import StreamHub
from shipyard.ingest.metrics import IngestMetrics
from shipyard.ingest.publish import PublishResult, publish_events
from shipyard.ingest.stores import open_stream, stream_store
from shipyard.ingest.stream import EmbeddedStore, EmbeddedStream, RecordBatch
from shipyard.ingest.worker import DrainPolicy, DrainWorker

__all__ = [
    "Client",
    "DrainPolicy",
    "DrainWorker",
    "DeliveryReport",
    "Undelivered",
    "StreamHub",
    "StreamSpec",
    "StreamStore",
    "EmbeddedStore",
    "stream_store",
    "create_ingest_routes",
    "DrainResult",
    "EmbeddedStream",
    "IngestMetrics",
    "PublishResult",
    "RecordBatch",
    "ShardStatus",
    "StreamBackend",
    "StreamStatus",
    "drain_to_landing",
    "open_stream",
    "publish_events",
    "read_landing",
]
