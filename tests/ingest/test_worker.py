"""The server's drain worker and ingest backpressure, over real HTTP."""

from __future__ import annotations

import time

import httpx

from shipyard.core.config import Settings
from shipyard.ingest import DrainPolicy, read_landing
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.pipeline.landing import event_landing_schema


def _records(n: int, start: int = 0) -> dict[str, object]:
    return {
        "Records": [
            {"Data": {"event_id": f"evt-{i:016x}", "event_time": "2026-11-05T09:15:00.123Z"},
             "PartitionKey": str(i)}
            for i in range(start, start + n)
        ]
    }  # fmt: skip


def test_the_worker_lands_records_by_age(settings: Settings) -> None:
    workspace = Workspace.open(settings)
    policy = DrainPolicy(flush_records=10_000, flush_age_s=0.2, tick_s=0.05)
    try:
        with BackgroundServer(workspace, drain=policy) as server:
            httpx.post(f"{server.url}/api/v1/streams", json={"StreamName": "cards"})
            assert httpx.post(f"{server.url}/streams/cards/records", json=_records(30)).is_success
            deadline = time.monotonic() + 10
            # Landed while the server runs: by age, not by the final flush at shutdown.
            while _landed(workspace) < 30:
                assert time.monotonic() < deadline, f"{_landed(workspace)} of 30 landed in 10 s"
                time.sleep(0.05)
    finally:
        workspace.close()


def _landed(workspace: Workspace) -> int:
    if not workspace.store.list_keys("landing/cards", ".parquet"):
        return 0
    return read_landing(workspace.store, "landing/cards").collect().height


def test_a_stream_too_far_ahead_of_its_drain_pushes_back(settings: Settings) -> None:
    workspace = Workspace.open(settings)
    policy = DrainPolicy(flush_records=10**9, flush_age_s=3600, tick_s=3600, max_lag_records=20)
    try:
        with BackgroundServer(workspace, drain=policy) as server:
            httpx.post(f"{server.url}/api/v1/streams", json={"StreamName": "cards"})
            url = f"{server.url}/streams/cards/records"
            assert httpx.post(url, json=_records(25)).status_code == 200
            refused = httpx.post(url, json=_records(5, start=25))
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["__type"] == "ServiceUnavailable"
        # On shutdown the worker lands what is left: nothing acknowledged is stranded.
        assert read_landing(workspace.store, "landing/cards").collect().height == 25
    finally:
        workspace.close()


def test_one_stuck_stream_does_not_starve_the_others(settings: Settings) -> None:
    from shipyard.ingest import DrainWorker, StreamHub, StreamSpec, stream_store
    from shipyard.storage import ObjectStore

    hub = StreamHub(stream_store(settings))
    store = ObjectStore(settings.resolved_store_url)
    for name in ("a", "b"):
        hub.create(name, StreamSpec(shards=1))
    record = [(b"k", b'{"event_id": "e", "event_time": "2026-11-05T09:15:00.123Z"}')]
    worker = DrainWorker(hub, store, DrainPolicy(flush_records=1), schema=event_landing_schema())
    hub.get("a").put_records(record * 3)
    worker.run_once()
    hub.get("a").put_records(record)
    worker.run_once()
    hub.get("a").commit("landing", 0, 0)  # rewound by an operator: "a" now refuses to drain
    hub.get("b").put_records(record * 2)
    assert worker.run_once() == 2  # "b" still lands
    hub.close()


def test_retention_trims_only_what_has_landed(settings: Settings) -> None:
    from shipyard.ingest import DrainWorker, StreamHub, StreamSpec, stream_store
    from shipyard.storage import ObjectStore

    hub = StreamHub(stream_store(settings))
    store = ObjectStore(settings.resolved_store_url)
    hub.create("a", StreamSpec(shards=1, retention_hours=1 / 3600))
    record = [(b"k", b'{"event_id": "e", "event_time": "2026-11-05T09:15:00.123Z"}')]
    stream = hub.get("a")
    stream.put_records(record * 5)
    worker = DrainWorker(
        hub,
        store,
        DrainPolicy(flush_records=10**6, flush_age_s=3600),
        schema=event_landing_schema(),
    )
    later_ms = time.time_ns() // 1_000_000 + 10_000
    assert worker.apply_retention(later_ms) == 0  # old enough, but not landed
    assert worker.run_once(force=True) == 5
    assert worker.apply_retention(later_ms) == 5
    assert stream.describe().shards[0].first_sequence == 5
    assert read_landing(store, "landing/a").collect().height == 5
    hub.close()
