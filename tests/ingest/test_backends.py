"""One contract, three backends: embedded log, NATS JetStream, Redis Streams.

Every test runs on each backend against the real server, so offsets, shards, retention and
errors mean the same whichever one holds the records.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable

import pytest

from shipyard.core.errors import InvalidRequestError, NotFoundError, StateError
from shipyard.ingest import StreamSpec, StreamStore

StoreFactory = Callable[[str], StreamStore]


def records(start: int, stop: int, keys: int = 5) -> list[tuple[bytes, bytes]]:
    return [(b"card-%d" % (i % keys), b'{"i": %d}' % i) for i in range(start, stop)]


def test_create_open_list_and_delete(make_store: StoreFactory, backend: str) -> None:
    store = make_store(backend)
    assert store.backend == backend
    created = store.create("events", StreamSpec(shards=3, partition_key_field="merchant_id"))
    assert created.shard_count == 3
    created.close()
    with pytest.raises(StateError, match="already exists"):
        store.create("events", StreamSpec(shards=3))
    assert store.names() == ["events"]
    reopened = make_store(backend).open("events")
    assert reopened.spec == StreamSpec(shards=3, partition_key_field="merchant_id")
    assert reopened.describe().backend == backend
    reopened.close()
    with pytest.raises(NotFoundError, match="missing"):
        store.open("missing")
    store.delete("events")
    assert store.names() == []
    with pytest.raises(NotFoundError):
        store.open("events")


def test_bad_names_and_specs_are_refused(make_store: StoreFactory, backend: str) -> None:
    store = make_store(backend)
    for name in ("../etc", "a/b", "", "x" * 129, "a b"):
        with pytest.raises(InvalidRequestError, match="not usable"):
            store.create(name, StreamSpec())
    with pytest.raises(InvalidRequestError, match="shards"):
        StreamSpec(shards=0)
    with pytest.raises(InvalidRequestError, match="retention_hours"):
        StreamSpec(retention_hours=-1)
    with pytest.raises(InvalidRequestError, match="retention_bytes"):
        StreamSpec(retention_bytes=0)


def test_sequences_are_per_shard_from_zero_and_shards_follow_crc32(
    make_store: StoreFactory, backend: str
) -> None:
    stream = make_store(backend).create("events", StreamSpec(shards=2))
    batch = records(0, 60)
    results = stream.put_records(batch[:40]) + stream.put_records(batch[40:])
    assert [r.shard for r in results] == [zlib.crc32(key) % 2 for key, _ in batch]
    for shard in range(2):
        mine = [i for i, r in enumerate(results) if r.shard == shard]
        assert [results[i].sequence for i in mine] == list(range(len(mine)))
        assert stream.end_sequence(shard) == len(mine)
        read = stream.read(shard, 0, 1000)
        assert [r.data for r in read] == [batch[i][1] for i in mine]
        assert [r.sequence for r in read] == list(range(len(mine)))
        assert all(abs(r.arrival_ms - time.time() * 1000) < 60_000 for r in read)
        tail = stream.read_batch(shard, 3, 4)
        assert tail.sequences == [3, 4, 5, 6]
        assert tail.payloads == [batch[i][1] for i in mine[3:7]]
        assert stream.read(shard, len(mine), 10) == []
    assert stream.put_records([]) == []
    stream.close()


def test_offsets_are_per_group_and_survive_a_new_process(
    make_store: StoreFactory, backend: str
) -> None:
    stream = make_store(backend).create("events", StreamSpec(shards=2))
    stream.put_records(records(0, 20))
    assert stream.committed("landing", 0) == 0
    stream.commit("landing", 0, 3)
    stream.commit("audit", 1, stream.end_sequence(1))
    with pytest.raises(StateError, match="at most"):
        stream.commit("landing", 0, stream.end_sequence(0) + 1)
    stream.close()
    again = make_store(backend).open("events")
    assert again.committed("landing", 0) == 3
    assert again.committed("landing", 1) == 0
    assert again.committed("audit", 1) == again.end_sequence(1)
    assert again.describe().groups["landing"] == (3, 0)
    again.close()


def test_a_closed_stream_refuses_work(make_store: StoreFactory, backend: str) -> None:
    stream = make_store(backend).create("events", StreamSpec(shards=1))
    stream.close()
    with pytest.raises(StateError, match="closed"):
        stream.put_records(records(0, 1))
    with pytest.raises(NotFoundError, match="no shard"):
        make_store(backend).open("events").read(5, 0, 1)


def test_concurrent_producers_get_distinct_sequences(
    make_store: StoreFactory, backend: str
) -> None:
    stream = make_store(backend).create("events", StreamSpec(shards=2))
    acks: list[tuple[object, bytes]] = []
    lock = threading.Lock()

    def produce(worker: int) -> None:
        for round_ in range(10):
            batch = [(b"k%d" % i, b"w%d-r%d-%d" % (worker, round_, i)) for i in range(20)]
            results = stream.put_records(batch)
            with lock:
                acks.extend(zip(results, [data for _, data in batch], strict=True))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for shard in range(2):
        stored = {r.sequence: r.data for r in stream.read(shard, 0, 10_000)}
        mine = {ack.sequence: data for ack, data in acks if ack.shard == shard}  # type: ignore[attr-defined]
        assert stored == mine
        assert sorted(stored) == list(range(len(stored)))
    stream.close()


def test_retention_by_age_drops_only_landed_records(make_store: StoreFactory, backend: str) -> None:
    stream = make_store(backend).create("events", StreamSpec(shards=1, retention_hours=1 / 3600))
    for start in range(0, 300, 50):
        stream.put_records(records(start, start + 50))
    written_ms = int(time.time() * 1000)
    assert stream.trim(written_ms, {0: 300}) == 0  # nothing is older than one second yet
    later = written_ms + 5_000
    assert stream.trim(later, {0: 120}) == 120  # old, but only what landed goes
    status = stream.describe().shards[0]
    assert (status.first_sequence, status.end_sequence) == (120, 300)
    kept = stream.read_batch(0, 0, 1000)  # reading from a trimmed offset starts at the first held
    assert kept.sequences == list(range(120, 300))
    assert kept.payloads[0] == b'{"i": 120}'
    assert stream.trim(later, {0: 300}) == 180
    assert stream.read(0, 0, 10) == []
    assert stream.put_records(records(300, 301))[0].sequence == 300  # never reused
    stream.close()


def test_retention_by_size_keeps_the_newest_bytes(make_store: StoreFactory, backend: str) -> None:
    payload = b"x" * 1000
    stream = make_store(backend).create("events", StreamSpec(shards=1, retention_bytes=50_000))
    for _ in range(4):
        stream.put_records([(b"k", payload)] * 50)
    now = int(time.time() * 1000)
    dropped = stream.trim(now, {0: 200})
    left = stream.read_batch(0, 0, 1000)
    assert dropped + len(left) == 200
    assert left.sequences[-1] == 199
    # the backends count bytes their own way (frame headers, entry overhead), within a margin
    assert 25 <= len(left) <= 50
    assert stream.describe().shards[0].first_sequence == 200 - len(left)
    stream.close()
