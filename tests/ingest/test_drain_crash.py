"""SIGKILL `shipyard ingest drain` at random moments, again and again, on every backend: after a
final run, every record of the stream is in the landing zone exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.core.config import Settings
from shipyard.ingest import StreamSpec, StreamStore, read_landing
from shipyard.storage import ObjectStore
from tests.ingest.conftest import backend_url

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
KILLS = 10
TIMES = ["2026-11-05T08:10:00Z", "2026-11-05T09:20:00Z", "2026-11-04T23:30:00Z"]


def _fill(stream_store: StreamStore, first: int, count: int) -> None:
    stream = stream_store.open("cards")
    batch = [
        (b"card-%d" % i, b'{"event_id": "evt-%d", "event_time": "%s", "amount": 1.5}'
         % (i, TIMES[i % 3].encode()))
        for i in range(first, first + count)
    ]  # fmt: skip
    for start in range(0, count, 5000):
        stream.put_records(batch[start : start + 5000])
    stream.close()


@pytest.mark.slow
def test_sigkill_during_drain_lands_every_record_exactly_once(
    tmp_path: Path, backend: str, stream_prefix: str, make_store: Callable[[str], StreamStore]
) -> None:
    store = make_store(backend)
    store.create("cards", StreamSpec(shards=2)).close()
    stream_url = backend_url(backend, stream_prefix)
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home"), "SHIPYARD_STREAM_URL": stream_url}
    rng = random.Random(11)
    objects = ObjectStore(Settings(home=tmp_path / "home").resolved_store_url)
    written = 0
    kills = 0
    for _ in range(KILLS):
        _fill(store, written, 20_000)  # new records between kills change the batch boundaries
        written += 20_000
        batch = str(rng.choice([400, 700]))
        log = tmp_path / "drain.log"
        with log.open("wb") as out:
            drain = subprocess.Popen(
                [SHIPYARD, "ingest", "drain", "cards", "--batch-records", batch],
                env=env,
                stdout=out,
                stderr=out,
            )
            # Kill once this run has landed a file: mid-drain, at a random point after that.
            landed_before = len(objects.list_keys("landing/cards", ".parquet"))
            deadline = time.monotonic() + 30
            while drain.poll() is None and time.monotonic() < deadline:
                if len(objects.list_keys("landing/cards", ".parquet")) > landed_before:
                    time.sleep(rng.uniform(0.0, 0.3))
                    break
                time.sleep(0.01)
            if drain.poll() is None:
                drain.send_signal(signal.SIGKILL)
                kills += 1
            drain.wait(timeout=60)
        assert drain.returncode in (0, -signal.SIGKILL), log.read_text()
    assert kills >= KILLS - 1, f"only {kills} drains were killed mid-run; the test lost its point"
    final = subprocess.run(
        [SHIPYARD, "ingest", "drain", "cards"], env=env, capture_output=True, timeout=120
    )
    assert final.returncode == 0, final.stderr.decode()

    settings = Settings(home=tmp_path / "home", stream_url=stream_url)
    landed = read_landing(ObjectStore(settings.resolved_store_url), "landing/cards").collect()
    ids = sorted(int(event_id[4:]) for event_id in landed["event_id"].to_list())
    assert ids == list(range(written)), "a record is missing or landed twice"
    stream = store.open("cards")
    positions = sorted(landed.select("_shard", "_sequence").rows())
    assert positions == [(s, q) for s in range(2) for q in range(stream.end_sequence(s))]
    stream.close()
