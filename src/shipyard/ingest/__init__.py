"""Ingest: events -> embedded durable stream -> landing zone of Parquet by event date and hour."""

from __future__ import annotations

from shipyard.ingest.api import create_ingest_routes
from shipyard.ingest.client import Client, DeliveryReport, Undelivered
from shipyard.ingest.drain import (
    FRAUD_EVENT_SCHEMA,
    DrainResult,
    drain_to_landing,
    read_landing,
)
from shipyard.ingest.hub import StreamHub, StreamSettings
from shipyard.ingest.metrics import IngestMetrics
from shipyard.ingest.publish import PublishResult, publish_events
from shipyard.ingest.stream import (
    EmbeddedStream,
    RecordBatch,
    ShardStatus,
    StreamBackend,
    StreamStatus,
    open_stream,
)
from shipyard.ingest.worker import DrainPolicy, DrainWorker

__all__ = [
    "Client",
    "DrainPolicy",
    "DrainWorker",
    "DeliveryReport",
    "Undelivered",
    "StreamHub",
    "StreamSettings",
    "create_ingest_routes",
    "FRAUD_EVENT_SCHEMA",
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
