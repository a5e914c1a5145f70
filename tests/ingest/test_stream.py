from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from shipyard.core.config import Settings
from shipyard.core.errors import (
    ConfigError,
    IntegrityError,
    InvalidRequestError,
    NotFoundError,
    StateError,
    StorageError,
)
from shipyard.core.types import PutResult
from shipyard.ingest import EmbeddedStream, open_stream

T0_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z


def fixed_clock() -> int:
    return T0_MS


def payload(i: int) -> bytes:
    return b'{"i": %d, "pad": "%s"}' % (i, b"x" * (i % 7))


def test_records_come_back_in_order_per_shard(tmp_path: Path) -> None:
    stream = EmbeddedStream.create(tmp_path, "fraud", shards=2, clock_ms=fixed_clock)
    results = stream.put_records([(b"card-%d" % (i % 5), payload(i)) for i in range(40)])
    results += stream.put_records([(b"card-%d" % (i % 5), payload(i)) for i in range(40, 60)])
    for shard in range(2):
        mine = [(r.sequence, i) for i, r in enumerate(results) if r.shard == shard]
        assert [seq for seq, _ in mine] == list(range(len(mine)))
        read = stream.read(shard, 0, 1000)
        assert [r.data for r in read] == [payload(i) for _, i in mine]
        assert {(r.shard, r.arrival_ms) for r in read} == {(shard, T0_MS)}
        assert stream.end_sequence(shard) == len(mine)
    assert [r.sequence for r in stream.read(0, 2, 3)] == [2, 3, 4]
    stream.close()


def test_partition_key_picks_a_stable_shard(tmp_path: Path) -> None:
    stream = EmbeddedStream.create(tmp_path, "fraud", shards=4)
    keys = [b"card-%07d" % i for i in range(20)]
    first = stream.put_records([(k, b"{}") for k in keys])
    second = stream.put_records([(k, b"{}") for k in reversed(keys)])
    assert [r.shard for r in first] == [zlib.crc32(k) % 4 for k in keys]
    assert [r.shard for r in reversed(second)] == [r.shard for r in first]
    # Pinned so a change of hash function (which would reshuffle keys) cannot slip in.
    assert [stream.shard_for(k) for k in keys[:8]] == [2, 0, 2, 0, 3, 1, 3, 1]
    stream.close()


def test_records_and_offsets_survive_reopen(tmp_path: Path) -> None:
    with EmbeddedStream.create(tmp_path, "fraud", shards=2, clock_ms=fixed_clock) as stream:
        results = stream.put_records([(b"k%d" % i, payload(i)) for i in range(25)])
        stream.commit("landing", results[-1].shard, results[-1].sequence + 1)
        before = [stream.read(s, 0, 100) for s in range(2)]
    with EmbeddedStream.open(tmp_path, "fraud") as stream:
        assert [stream.read(s, 0, 100) for s in range(2)] == before
        assert stream.committed("landing", results[-1].shard) == results[-1].sequence + 1
        assert stream.put_records([(b"k0", b"next")])[0].sequence == len(before[results[0].shard])


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x07",  # a partial length field
        b"\x00" * 4096,  # a zero-filled extent, as a crash can leave after extending the file
        (500).to_bytes(4, "little") + b"\x00" * 30,  # a frame longer than the file
        (3).to_bytes(4, "little") + b"\xde\xad\xbe\xef" + b"\x00" * 8 + b"abc",  # bad crc
    ],
)
def test_a_torn_tail_is_cut_off_on_open(tmp_path: Path, garbage: bytes) -> None:
    with EmbeddedStream.create(tmp_path, "fraud", shards=1) as stream:
        stream.put_records([(b"k", payload(i)) for i in range(3)])
    log = tmp_path / "fraud" / "shard-0000.log"
    intact_size = log.stat().st_size
    with log.open("ab") as handle:
        handle.write(garbage)
    with EmbeddedStream.open(tmp_path, "fraud") as stream:
        assert log.stat().st_size == intact_size
        assert [r.data for r in stream.read(0, 0, 10)] == [payload(i) for i in range(3)]
        assert stream.put_records([(b"k", b"after")]) == [PutResult(0, 3)]
    with EmbeddedStream.open(tmp_path, "fraud") as stream:
        assert [r.data for r in stream.read(0, 0, 10)][-2:] == [payload(2), b"after"]
    saved = list(log.parent.glob("shard-0000.log.torn-*"))
    assert [p.read_bytes() for p in saved] == [garbage]


def test_a_record_changed_on_disk_is_refused_on_read(tmp_path: Path) -> None:
    stream = EmbeddedStream.create(tmp_path, "fraud", shards=1)
    stream.put_records([(b"k", b"hello world")])
    log = tmp_path / "fraud" / "shard-0000.log"
    data = bytearray(log.read_bytes())
    data[-1] ^= 0xFF
    log.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="crc32"):
        stream.read(0, 0, 1)
    stream.close()


def test_offsets_are_kept_per_group_and_shard(tmp_path: Path) -> None:
    stream = EmbeddedStream.create(tmp_path, "fraud", shards=2)
    stream.put_records([(b"k%d" % i, b"{}") for i in range(30)])
    assert stream.committed("landing", 0) == 0
    stream.commit("landing", 0, 3)
    stream.commit("audit", 1, 2)
    stream.commit("landing", 0, 1)  # rewinding, to replay, is allowed
    assert [stream.committed("landing", s) for s in range(2)] == [1, 0]
    assert [stream.committed("audit", s) for s in range(2)] == [0, 2]
    status = stream.describe()
    assert status.groups == {"audit": (0, 2), "landing": (1, 0)}
    assert status.records == 30
    assert [s.end_sequence for s in status.shards] == [stream.end_sequence(s) for s in range(2)]
    assert all(s.bytes > 0 for s in status.shards)
    stream.close()


def test_commit_past_the_end_is_refused(tmp_path: Path) -> None:
    stream = EmbeddedStream.create(tmp_path, "fraud", shards=1)
    stream.put_records([(b"k", b"{}")] * 2)
    stream.commit("landing", 0, 2)
    with pytest.raises(StateError, match="at most 2"):
        stream.commit("landing", 0, 3)
    with pytest.raises(StateError):
        stream.commit("landing", 0, -1)
    with pytest.raises(InvalidRequestError):
        stream.commit("bad group", 0, 1)
    assert stream.committed("landing", 0) == 2
    stream.close()


def test_create_is_idempotent_but_keeps_its_shard_count(tmp_path: Path) -> None:
    EmbeddedStream.create(tmp_path, "fraud", shards=3).close()
    with EmbeddedStream.create(tmp_path, "fraud", shards=3) as stream:
        assert stream.shard_count == 3
    with pytest.raises(StateError, match="already exists with 3 shards"):
        EmbeddedStream.create(tmp_path, "fraud", shards=2)


def test_opening_an_unknown_stream_names_the_known_ones(tmp_path: Path) -> None:
    EmbeddedStream.create(tmp_path, "clicks").close()
    EmbeddedStream.create(tmp_path, "fraud").close()
    with pytest.raises(NotFoundError, match="'payments'.*known streams: clicks, fraud"):
        EmbeddedStream.open(tmp_path, "payments")
    assert EmbeddedStream.known(tmp_path) == ["clicks", "fraud"]


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "a b", "x" * 129, "é"])
def test_unusable_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidRequestError, match="name"):
        EmbeddedStream.create(tmp_path, name)


def test_a_second_owner_is_refused(tmp_path: Path) -> None:
    stream = EmbeddedStream.create(tmp_path, "fraud")
    with pytest.raises(StateError, match="already open"):
        EmbeddedStream.open(tmp_path, "fraud")
    stream.close()
    EmbeddedStream.open(tmp_path, "fraud").close()


def test_bad_input_and_misuse_are_refused(tmp_path: Path) -> None:
    stream = EmbeddedStream.create(tmp_path, "fraud", shards=2)
    with pytest.raises(InvalidRequestError, match="bytes"):
        stream.put_records([(b"k", "text")])  # type: ignore[list-item]
    with pytest.raises(InvalidRequestError, match="bytes"):
        stream.put_records([("k", b"{}")])  # type: ignore[list-item]
    with pytest.raises(InvalidRequestError, match="shards"):
        EmbeddedStream.create(tmp_path, "other", shards=0)
    with pytest.raises(NotFoundError, match="shards are 0..1"):
        stream.read(2, 0, 1)
    with pytest.raises(InvalidRequestError):
        stream.read(0, -1, 1)
    assert stream.put_records([]) == []
    assert stream.read(0, 5, 10) == []
    stream.close()
    stream.close()
    with pytest.raises(StateError, match="closed"):
        stream.put_records([(b"k", b"{}")])


def test_open_stream_picks_the_backend_from_settings(settings: Settings, tmp_path: Path) -> None:
    stream = open_stream(settings, "fraud", shards=3)
    assert stream.describe().backend == "embedded"
    assert stream.shard_count == 3
    assert (settings.stream_path / "fraud" / "stream.json").exists()
    stream.close()
    reopened = open_stream(settings, "fraud", create=False)
    assert reopened.shard_count == 3
    reopened.close()
    with pytest.raises(NotFoundError):
        open_stream(settings, "missing", create=False)
    kafka = Settings(home=tmp_path / "home", stream_url="kafka://127.0.0.1:9092")
    with pytest.raises(ConfigError, match="'embedded'"):
        open_stream(kafka, "fraud")


def test_a_failed_fsync_stops_writes_until_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = EmbeddedStream.create(tmp_path, "fraud", shards=1)
    stream.put_records([(b"k", b"kept")])

    def failing_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("shipyard.ingest._shardlog._fdatasync", failing_sync)
    with pytest.raises(StorageError, match="Input/output error"):
        stream.put_records([(b"k", b"lost")])
    monkeypatch.undo()
    with pytest.raises(StorageError, match="reopen the stream"):
        stream.put_records([(b"k", b"refused")])
    assert [r.data for r in stream.read(0, 0, 10)] == [b"kept"]
    stream.close()
    with EmbeddedStream.open(tmp_path, "fraud") as stream:
        assert [r.data for r in stream.read(0, 0, 10)] == [b"kept"]
        assert stream.put_records([(b"k", b"again")]) == [PutResult(0, 1)]


def test_damage_before_later_writes_is_refused_not_cut(tmp_path: Path) -> None:
    with EmbeddedStream.create(tmp_path, "fraud", shards=1) as stream:
        stream.put_records([(b"k", payload(i)) for i in range(3)])
        stream.put_records([(b"k", payload(i)) for i in range(3, 6)])
    log = tmp_path / "fraud" / "shard-0000.log"
    data = bytearray(log.read_bytes())
    data[30] ^= 0xFF  # inside the first record: the second write's records follow it
    log.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="acknowledged records, not a torn write"):
        EmbeddedStream.open(tmp_path, "fraud")
    assert log.read_bytes() == bytes(data)  # nothing was cut away
    assert not list(log.parent.glob("*.torn-*"))


def test_a_torn_last_write_is_cut_even_when_its_later_frames_survived(tmp_path: Path) -> None:
    with EmbeddedStream.create(tmp_path, "fraud", shards=1) as stream:
        stream.put_records([(b"k", payload(0))])
        stream.put_records([(b"k", payload(i)) for i in range(1, 4)])
    log = tmp_path / "fraud" / "shard-0000.log"
    data = bytearray(log.read_bytes())
    first_of_last_write = 8 + 16 + len(payload(0))
    data[first_of_last_write + 20] ^= 0xFF  # the write's first page did not reach the disk
    log.write_bytes(bytes(data))
    with EmbeddedStream.open(tmp_path, "fraud") as stream:
        assert [r.data for r in stream.read(0, 0, 10)] == [payload(0)]
        assert stream.put_records([(b"k", b"next")]) == [PutResult(0, 1)]


def test_segments_roll_and_reads_span_them(tmp_path: Path) -> None:
    from shipyard.ingest import StreamSpec

    spec = StreamSpec(shards=1, retention_bytes=256 * 1024)  # 64 KiB segments
    big = b"y" * 3000
    with EmbeddedStream.create(tmp_path, "fraud", spec=spec) as stream:
        for start in range(0, 200, 20):
            stream.put_records([(b"k", big + b"%d" % i) for i in range(start, start + 20)])
    segments = sorted((tmp_path / "fraud").glob("shard-0000*.log"))
    assert len(segments) > 3
    with EmbeddedStream.open(tmp_path, "fraud") as stream:
        assert stream.spec == spec
        batch = stream.read_batch(0, 10, 150)
        assert batch.sequences == list(range(10, 160))
        assert batch.payloads == [big + b"%d" % i for i in range(10, 160)]
        dropped = stream.trim(T0_MS, {0: 200})
        left = stream.read_batch(0, 0, 1000)
        assert dropped + len(left) == 200
        assert sum(len(p) + 16 for p in left.payloads) <= 256 * 1024
        assert len(sorted((tmp_path / "fraud").glob("shard-0000*.log"))) < len(segments)
    with EmbeddedStream.open(tmp_path, "fraud") as stream:  # the trim outlives a restart
        assert stream.describe().shards[0].first_sequence == 200 - len(left)
        assert stream.read_batch(0, 0, 1000).payloads == left.payloads
        assert stream.put_records([(b"k", b"next")]) == [PutResult(0, 200)]
