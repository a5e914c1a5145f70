"""What only the NATS JetStream backend has to get right: its connection, its names on the
server, reads in chunks, and what a crashed create or delete leaves behind."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import nats
import orjson
import pytest

from shipyard.core.errors import ConfigError, InvalidRequestError, StateError, StorageError
from shipyard.ingest import StreamSpec, StreamStore
from shipyard.ingest import _nats_io as nats_io
from shipyard.ingest.nats_stream import NatsStore
from tests.ingest.conftest import NATS_URL

StoreFactory = Callable[[str], StreamStore]


def _jetstream(request: str, body: dict[str, object] | None = None) -> dict[str, object]:
    """One JetStream API request on a connection of the test's own."""

    async def ask() -> dict[str, object]:
        nc = await nats.connect(NATS_URL)
        try:
            reply = await nc.request(f"$JS.API.{request}", orjson.dumps(body or {}), timeout=5)
        finally:
            await nc.close()
        answer: dict[str, object] = orjson.loads(reply.data)
        return answer

    return asyncio.run(ask())


def _server_streams(prefix: str) -> list[str]:
    names = _jetstream("STREAM.NAMES")["streams"] or []
    assert isinstance(names, list)
    return sorted(name for name in names if prefix in name)


def _nats_threads() -> int:
    return sum(t.name.startswith("shipyard-nats-") for t in threading.enumerate())


def test_a_server_that_is_down_is_a_quick_clear_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    threads = _nats_threads()
    started = time.monotonic()
    with pytest.raises(
        StorageError, match=f"cannot connect to the NATS server at nats://127.0.0.1:{port}"
    ):
        NatsStore(f"nats://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    assert _nats_threads() == threads  # the failed connection's loop thread is gone


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown parameters \\['perfix'\\]"):
        NatsStore(f"{NATS_URL}?perfix=x")
    with pytest.raises(ConfigError, match="prefix 'a.b' is not usable"):
        NatsStore(f"{NATS_URL}?prefix=a.b")


def test_names_map_to_distinct_jetstream_streams_and_delete_leaves_nothing(
    make_store: StoreFactory, stream_prefix: str
) -> None:
    store = make_store("nats")
    long_name = "n." * 63 + "xx"  # 128 characters, its escaped form too long for a name
    names = ["a.b", "a_b", "a_db", "a-b", long_name]
    for i, name in enumerate(names):
        with store.create(name, StreamSpec(shards=1)) as stream:
            stream.put_records([(b"k", b"%d" % i)] * (i + 1))
    assert store.names() == sorted(names)
    for i, name in enumerate(names):  # each kept its own records
        with store.open(name) as stream:
            assert stream.read_batch(0, 0, 100).payloads == [b"%d" % i] * (i + 1)
    assert f"{stream_prefix}_a_db_0" in _server_streams(stream_prefix)  # 'a.b', shard 0
    assert all(len(name) < 120 for name in _server_streams(stream_prefix))
    for name in names:
        store.delete(name)
    assert store.names() == []
    assert _server_streams(stream_prefix) == []


def test_reads_span_many_pull_requests_whatever_the_sizes(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny chunks, so that a read takes many pull requests and some end with their byte
    # budget used up exactly, which the server reports with no status at all.
    monkeypatch.setattr(nats_io, "READ_CHUNK_RECORDS", 7)
    monkeypatch.setattr(nats_io, "READ_CHUNK_BYTES", 1500)
    monkeypatch.setattr(nats_io, "READ_STALL_S", 1.0)
    stream = make_store("nats").create("events", StreamSpec(shards=1))
    payloads = [b"r%d-" % i + b"x" * ((i * 37) % 101) for i in range(400)]
    payloads[100] = b"y" * 5000  # bigger than a whole chunk
    for start in range(0, 400, 100):
        stream.put_records([(b"k", p) for p in payloads[start : start + 100]])
    for first in range(0, 60, 3):
        started = time.monotonic()
        batch = stream.read_batch(0, first, 1000)
        assert batch.sequences == list(range(first, 400))
        assert batch.payloads == payloads[first:]
        assert time.monotonic() - started < 1.0  # it never waited for a stalled request
    assert stream.read_batch(0, 390, 5).sequences == [390, 391, 392, 393, 394]
    stream.close()


def test_a_pull_that_uses_up_its_bytes_exactly_does_not_stall(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nine equal records (one-digit sequences, so equal deliveries too) and every byte budget
    # over a range wider than one delivery: some budget is an exact multiple of it.
    monkeypatch.setattr(nats_io, "READ_STALL_S", 0.5)
    stream = make_store("nats").create("events", StreamSpec(shards=1))
    stream.put_records([(b"k", b"x" * 50)] * 9)
    for budget in range(200, 400):
        monkeypatch.setattr(nats_io, "READ_CHUNK_BYTES", budget)
        started = time.monotonic()
        assert stream.read_batch(0, 0, 100).sequences == list(range(9)), budget
        assert time.monotonic() - started < 0.5, budget
    stream.close()


def test_a_large_batch_reads_back_whole_and_in_order(make_store: StoreFactory) -> None:
    stream = make_store("nats").create("events", StreamSpec(shards=2))
    sent: dict[int, list[bytes]] = {0: [], 1: []}
    for start in range(0, 30_000, 500):
        batch = [(b"card-%d" % (i % 97), b'{"i": %d}' % i) for i in range(start, start + 500)]
        for result, (_, data) in zip(stream.put_records(batch), batch, strict=True):
            sent[result.shard].append(data)
    for shard in (0, 1):
        batch = stream.read_batch(shard, 0, 200_000)
        assert batch.payloads == sent[shard]
        assert batch.sequences == list(range(len(sent[shard])))
        assert batch.arrival_ms == sorted(batch.arrival_ms)
        assert abs(batch.arrival_ms[-1] - time.time() * 1000) < 60_000  # the server's clock
    stream.close()


def test_records_up_to_the_server_max_payload_and_no_further(make_store: StoreFactory) -> None:
    stream = make_store("nats").create("events", StreamSpec(shards=1))
    limit = 1024 * 1024  # the test server's max_payload (its default)
    biggest = b"z" * limit
    assert stream.put_records([(b"k", biggest)])[0].sequence == 0
    with pytest.raises(InvalidRequestError, match=f"max_payload of {limit}"):
        stream.put_records([(b"k", b"small"), (b"k", biggest + b"!")])
    assert stream.end_sequence(0) == 1  # all or nothing: the small one was not sent either
    assert stream.read_batch(0, 0, 10).payloads == [biggest]
    stream.close()


def test_writing_to_a_stream_deleted_under_it_fails_fast(make_store: StoreFactory) -> None:
    store = make_store("nats")
    stream = store.create("events", StreamSpec(shards=1))
    store.delete("events")
    started = time.monotonic()
    with pytest.raises(StorageError, match="no stream took it"):
        stream.put_records([(b"k", b"lost")])
    assert time.monotonic() - started < 5
    stream.close()


def test_a_crashed_delete_does_not_shift_the_next_streams_sequences(
    make_store: StoreFactory, stream_prefix: str
) -> None:
    store = make_store("nats")
    with store.create("events", StreamSpec(shards=2)) as stream:
        stream.put_records([(b"k%d" % i, b"old") for i in range(10)])
        stream.commit("landing", 0, stream.end_sequence(0))
    # A delete that died after dropping the spec bucket left the shards' streams behind.
    _jetstream(f"STREAM.DELETE.KV_{stream_prefix}_events_meta")
    assert store.names() == []
    with store.create("events", StreamSpec(shards=2)) as stream:
        assert stream.put_records([(b"k1", b"new")])[0].sequence == 0
        assert stream.committed("landing", 0) == 0
        assert [r.data for r in stream.read(stream.shard_for(b"k1"), 0, 10)] == [b"new"]


def test_closing_stops_the_connection_threads(make_store: StoreFactory) -> None:
    threads = _nats_threads()
    store = NatsStore(f"{NATS_URL}?prefix=unused")
    stream = make_store("nats").create("events", StreamSpec(shards=1))
    assert _nats_threads() >= threads + 2
    stream.close()
    store.close()
    store.close()  # twice is fine
    assert _nats_threads() <= threads + 1  # only make_store's own store is left
    with pytest.raises(StateError, match="closed"):
        store.names()
