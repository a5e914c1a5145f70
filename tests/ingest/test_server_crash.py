"""SIGKILL the real server during a bulk send, again and again: nothing acknowledged is lost
or landed twice, and nothing unacknowledged was reported delivered."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shipyard.core.config import Settings
from shipyard.ingest import StreamStore, read_landing
from shipyard.storage import ObjectStore
from tests.ingest.conftest import backend_url
from tests.server_process import free_port, start_server

KILLS = 10
# The ingest API and the drain live in the supervisor; inference workers would only relay its
# records through their proxy. One process keeps each restart short (no worker interpreters to
# start) and puts each kill on the process that acknowledges.
WORKERS = 1


class _Sender:
    """Sends batches of new event ids until the server goes away; remembers what was acked."""

    def __init__(self, url: str, first_id: int) -> None:
        self.url = url
        self.next_id = first_id
        self.acknowledged: list[int] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                ids = list(range(self.next_id, self.next_id + 100))
                self.next_id += 100
                records = [
                    {"Data": {"event_id": f"evt-{i:016x}",
                              "event_time": "2026-11-05T09:15:00.123Z"},
                     "PartitionKey": str(i)}
                    for i in ids
                ]  # fmt: skip
                try:
                    answer = client.post(f"{self.url}/streams/cards/records",
                                         json={"Records": records})  # fmt: skip
                except httpx.HTTPError:
                    return  # killed: whatever was not answered was not acknowledged
                if answer.status_code != 200:
                    continue
                for i, result in zip(ids, answer.json()["Records"], strict=True):
                    if "SequenceNumber" in result:
                        self.acknowledged.append(i)


@pytest.mark.slow
def test_sigkill_during_bulk_send_loses_and_duplicates_nothing(
    tmp_path: Path, backend: str, stream_prefix: str, make_store: Callable[[str], StreamStore]
) -> None:
    home = tmp_path / "home"
    make_store(backend)  # removes this test's streams afterwards
    stream_url = backend_url(backend, stream_prefix)
    env = {
        **os.environ,
        "SHIPYARD_HOME": str(home),
        "SHIPYARD_STREAM_URL": stream_url,
        # Drain constantly, so that kills also land in the middle of drain passes.
        "SHIPYARD_DRAIN_FLUSH_AGE_S": "0.1",
        "SHIPYARD_DRAIN_FLUSH_RECORDS": "500",
    }
    log = tmp_path / "server.log"
    rng = random.Random(7)
    acknowledged: list[int] = []
    next_id = 0
    port = free_port()
    server = start_server(env, port, log, workers=WORKERS)
    httpx.post(f"http://127.0.0.1:{port}/api/v1/streams", json={"StreamName": "cards"})
    for _ in range(KILLS):
        sender = _Sender(f"http://127.0.0.1:{port}", next_id)
        sender.thread.start()
        time.sleep(rng.uniform(0.3, 1.2))
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        sender.thread.join(timeout=30)
        acknowledged += sender.acknowledged
        next_id = sender.next_id
        port = free_port()
        server = start_server(env, port, log, workers=WORKERS)
    server.send_signal(signal.SIGTERM)  # a clean stop lands what is left
    assert server.wait(timeout=60) == 0, log.read_text()

    settings = Settings(home=home, stream_url=stream_url)
    landed = read_landing(ObjectStore(settings.resolved_store_url), "landing/cards").collect()
    # The landing schema keeps the event's known fields: the id is in event_id.
    ids = [int(event_id[4:], 16) for event_id in landed["event_id"].to_list()]
    assert len(acknowledged) >= 1000, f"only {len(acknowledged)} records were acknowledged"
    assert len(ids) == len(set(ids)), "a record landed twice"
    missing = set(acknowledged) - set(ids)
    assert not missing, f"{len(missing)} acknowledged records never landed"
    # Records written but whose answer was lost may land too: they were never reported
    # delivered, and none of them is a duplicate.
    assert set(ids) <= set(range(next_id))
