"""What only the Redis Streams backend has: its key layout, big batches, a server that is down,
and streams changed behind its back. The shared contract is in test_backends.py."""

from __future__ import annotations

import re
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from shipyard.core.config import Settings
from shipyard.core.errors import ConfigError, IntegrityError, StorageError
from shipyard.ingest import StreamSpec, StreamStore, stream_store
from shipyard.ingest.redis_stream import RedisStore
from tests.ingest.conftest import REDIS_URL

StoreFactory = Callable[[str], StreamStore]


@pytest.fixture
def server() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def keys_under(server: redis.Redis, prefix: str) -> set[str]:
    return {key.decode() for key in server.scan_iter(match=f"{prefix}:*", count=1000)}


def test_the_keys_of_a_stream_are_documented_and_delete_removes_every_one(
    make_store: StoreFactory, stream_prefix: str, server: redis.Redis
) -> None:
    store = make_store("redis")
    stream = store.create("events", StreamSpec(shards=3, retention_hours=1 / 3600))
    stream.put_records([(b"k%d" % i, b"x" * 10) for i in range(30)])
    stream.commit("landing", 0, 1)
    stream.trim(int(time.time() * 1000) + 10_000, {0: 1, 1: 0, 2: 0})
    stream.close()
    assert keys_under(server, stream_prefix) == {
        f"{stream_prefix}:streams",
        f"{stream_prefix}:meta:events",
        *(f"{stream_prefix}:stream:events:{shard}" for shard in range(3)),
    }
    store.delete("events")
    assert keys_under(server, stream_prefix) == set()


def test_a_batch_bigger_than_one_script_call_keeps_input_order(make_store: StoreFactory) -> None:
    stream = make_store("redis").create("events", StreamSpec(shards=2))
    # 25,000 records are three put chunks; 1 MB payloads make reads span many 2 MB calls
    batch = [(b"card-%d" % (i % 7), b"%d:" % i + b"y" * (i % 300)) for i in range(25_000)]
    batch[100:106] = [(b"card-big", b"%d:" % i + b"z" * 1_000_000) for i in range(100, 106)]
    results = stream.put_records(batch)
    assert [r.shard for r in results] == [zlib.crc32(key) % 2 for key, _ in batch]
    for shard in range(2):
        mine = [i for i, r in enumerate(results) if r.shard == shard]
        assert [results[i].sequence for i in mine] == list(range(len(mine)))
        read = stream.read_batch(shard, 0, 100_000)
        assert read.sequences == list(range(len(mine)))
        assert read.payloads == [batch[i][1] for i in mine]
        middle = stream.read_batch(shard, 5_000, 3)
        assert middle.payloads == [batch[i][1] for i in mine[5_000:5_003]]
    stream.close()


def test_forty_megabytes_in_one_call_are_split_by_size(make_store: StoreFactory) -> None:
    stream = make_store("redis").create("events", StreamSpec(shards=1))
    batch = [(b"k", bytes([i]) * 1_000_000) for i in range(40)]
    assert [r.sequence for r in stream.put_records(batch)] == list(range(40))
    read = stream.read_batch(0, 0, 1_000)
    assert [p[:1] for p in read.payloads] == [bytes([i]) for i in range(40)]
    assert stream.describe().shards[0].bytes == 40_000_000
    stream.close()


def test_bytes_are_payload_bytes_held_and_arrivals_come_back_per_batch(
    make_store: StoreFactory,
) -> None:
    stream = make_store("redis").create("events", StreamSpec(shards=1, retention_hours=1 / 3600))
    stream.put_records([(b"k", b"a" * 100)] * 10)
    time.sleep(0.02)
    stream.put_records([(b"k", b"b" * 50)] * 5)
    read = stream.read_batch(0, 0, 100)
    first, second = read.arrival_ms[0], read.arrival_ms[-1]
    assert read.arrival_ms == [first] * 10 + [second] * 5 and second > first
    assert stream.describe().shards[0].bytes == 1_250
    assert stream.trim(second + 5_000, {0: 12}) == 12
    status = stream.describe().shards[0]
    assert (status.first_sequence, status.end_sequence, status.bytes) == (12, 15, 150)
    stream.close()


def test_a_redis_that_is_down_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"redis://:hunter2@127.0.0.1:{port}/0?prefix=down"
    store = stream_store(Settings(home=tmp_path, stream_url=url))
    started = time.monotonic()
    shown = re.escape(f"Redis at redis://:***@127.0.0.1:{port}/0")
    with pytest.raises(StorageError, match=shown) as err:
        store.names()
    assert "hunter2" not in str(err.value)
    assert time.monotonic() - started < 5
    with pytest.raises(StorageError, match="did not answer"):
        store.create("events", StreamSpec())
    store.close()


def test_a_bad_prefix_is_a_config_error_and_redis_options_pass_through(
    stream_prefix: str,
) -> None:
    for prefix in ("", "a*b", "a b"):
        with pytest.raises(ConfigError, match="prefix"):
            RedisStore(f"{REDIS_URL}?prefix={prefix}")
    store = RedisStore(f"{REDIS_URL}?socket_timeout=5&prefix={stream_prefix}")
    assert store.names() == []
    store.close()


def test_a_handle_on_a_deleted_stream_fails_and_recreates_nothing(
    make_store: StoreFactory, stream_prefix: str, server: redis.Redis
) -> None:
    store = make_store("redis")
    stale = store.create("events", StreamSpec(shards=2))
    stale.put_records([(b"k", b"old")])
    store.delete("events")
    with pytest.raises(StorageError, match="no longer on Redis"):
        stale.put_records([(b"k", b"lost")])
    with pytest.raises(StorageError, match="no longer on Redis"):
        stale.commit("landing", 0, 0)
    assert keys_under(server, stream_prefix) == set()
    fresh = store.create("events", StreamSpec(shards=2))  # same name, a new stream
    with pytest.raises(StorageError, match="no longer on Redis"):
        stale.end_sequence(0)
    assert fresh.put_records([(b"k", b"new")])[0].sequence == 0
    stale.close()
    fresh.close()


def test_entries_deleted_outside_shipyard_are_reported(
    make_store: StoreFactory, stream_prefix: str, server: redis.Redis
) -> None:
    stream = make_store("redis").create("events", StreamSpec(shards=1))
    stream.put_records([(b"k", b"%d" % i) for i in range(10)])
    server.xdel(f"{stream_prefix}:stream:events:0", "0-5")  # sequence 4
    assert stream.read_batch(0, 0, 4).sequences == [0, 1, 2, 3]
    with pytest.raises(IntegrityError, match="hole"):
        stream.read_batch(0, 0, 10)
    stream.close()
