from __future__ import annotations

import shipyard.ingest


def test_public_names_are_pinned() -> None:
    assert sorted(shipyard.ingest.__all__) == [
        "Client",
        "DeliveryReport",
        "DrainPolicy",
        "DrainResult",
        "DrainWorker",
        "EmbeddedStore",
        "EmbeddedStream",
        "IngestMetrics",
        "PublishResult",
        "RecordBatch",
        "ShardStatus",
        "StreamBackend",
        "StreamHub",
        "StreamSpec",
        "StreamStatus",
        "StreamStore",
        "Undelivered",
        "create_ingest_routes",
        "drain_to_landing",
        "open_stream",
        "publish_events",
        "read_landing",
        "stream_store",
    ]
    for name in shipyard.ingest.__all__:
        assert hasattr(shipyard.ingest, name)
