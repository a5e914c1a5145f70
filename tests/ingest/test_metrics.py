"""Ingest metrics on /metrics, read back with Prometheus's own text-format parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shipyard.core.config import Settings
from shipyard.ingest import DrainPolicy
from shipyard.pipeline import BackgroundServer, Workspace


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_records_rejections_lag_and_backpressure_are_exposed(settings: Settings) -> None:
    workspace = Workspace.open(settings)
    policy = DrainPolicy(flush_records=10**9, flush_age_s=3600, tick_s=3600, max_lag_records=3)
    try:
        with BackgroundServer(workspace, drain=policy) as server:
            httpx.post(f"{server.url}/api/v1/streams", json={"StreamName": "cards"})
            records = [{"Data": {"event_id": str(i)}, "PartitionKey": str(i)} for i in range(4)]
            records.append({"PartitionKey": "no-data"})
            url = f"{server.url}/streams/cards/records"
            assert httpx.post(url, json={"Records": records}).json()["FailedRecordCount"] == 1
            assert httpx.post(url, json={"Records": records[:1]}).status_code == 503
            scraped = httpx.get(f"{server.url}/metrics")
        assert scraped.headers["content-type"].startswith("text/plain")
        samples = _samples(scraped.text)
        stream = (("stream", "cards"),)
        assert samples[("shipyard_ingest_records_total", stream)] == 4
        assert samples[("shipyard_ingest_bytes_total", stream)] > 0
        rejected = (("reason", "InvalidArgumentException"), ("stream", "cards"))
        assert samples[("shipyard_ingest_rejected_records_total", rejected)] == 1
        assert samples[("shipyard_ingest_backpressure_events_total", stream)] == 1
        lag = (("group", "landing"), ("stream", "cards"))
        assert samples[("shipyard_stream_consumer_lag_records", lag)] == 4
    finally:
        workspace.close()
