from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from shipyard.core.errors import ConfigError, NotFoundError, StateError
from shipyard.core.types import PutResult, StreamRecord
from shipyard.ingest import DrainResult, EmbeddedStream, read_landing
from shipyard.ingest import drain_to_landing as drain_with
from shipyard.pipeline.landing import event_landing_schema
from shipyard.storage import ObjectStore

ARRIVAL = datetime(2026, 11, 5, 10, 30, tzinfo=UTC)


def drain_to_landing(stream: Any, store: ObjectStore, **options: Any) -> DrainResult:
    """The drain with the schema the pipeline gives it (the fraud contract's)."""
    return drain_with(stream, store, **{"schema": event_landing_schema(), **options})


def arrival_clock() -> int:
    return int(ARRIVAL.timestamp() * 1000)


def event(i: int, event_time: str | None = "2026-11-05T09:15:00.123Z", **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "event_id": f"evt-{i:016x}",
        "event_time": event_time,
        "card_id": f"card-{i:07d}",
        "amount": 10.5 + i,
        "currency": "EUR",
        "merchant_id": "m-00042",
        "merchant_category": "5411",
        "country": "DE",
        "channel": "pos",
        "card_age_days": 100 + i,
        "is_foreign": False,
    }
    body.update(fields)
    return orjson.dumps(body)


def make_stream(tmp_path: Path, payloads: Sequence[bytes], shards: int = 1) -> EmbeddedStream:
    stream = EmbeddedStream.create(tmp_path / "streams", "fraud", shards, clock_ms=arrival_clock)
    if payloads:
        stream.put_records([(b"card-%d" % i, p) for i, p in enumerate(payloads)])
    return stream


def landed(store: ObjectStore) -> pl.DataFrame:
    return read_landing(store, "landing/fraud").collect().sort("_shard", "_sequence")


def test_rows_land_in_their_event_hour_with_ingest_columns(tmp_path: Path) -> None:
    times = ["2026-11-04T00:59:59.999Z", "2026-11-04T01:00:00.000Z", "2026-11-05T09:15:00Z"]
    stream = make_stream(tmp_path, [event(i, t) for i, t in enumerate(times * 2)], shards=2)
    store = ObjectStore((tmp_path / "objects").as_uri())

    result = drain_to_landing(stream, store)

    partitions = {key.rsplit("/", 1)[0] for key in result.files}
    assert partitions == {
        "landing/fraud/dt=2026-11-04/hour=00",
        "landing/fraud/dt=2026-11-04/hour=01",
        "landing/fraud/dt=2026-11-05/hour=09",
    }
    assert all(key.split("/")[-1].startswith("part-s") for key in result.files)
    assert result.records == result.rows_landed == 6
    assert result.committed == {0: stream.end_sequence(0), 1: stream.end_sequence(1)}
    rows = landed(store)
    assert rows.schema == pl.Schema(
        {
            **event_landing_schema(),
            "_shard": pl.Int32(),
            "_sequence": pl.Int64(),
            "_arrival_ms": pl.Int64(),
            "_partitioned_by": pl.String(),
        }
    )
    assert sorted(rows["event_time"].to_list()) == sorted(times * 2)  # kept as it arrived
    assert set(rows["_partitioned_by"]) == {"event_time"}
    assert set(rows["_arrival_ms"]) == {arrival_clock()}
    hour_one = store.scan_parquet([k for k in result.files if "hour=01" in k]).collect()
    assert hour_one["event_time"].to_list() == ["2026-11-04T01:00:00.000Z"] * 2
    stream.close()


def test_late_and_malformed_event_times_land_by_arrival(tmp_path: Path) -> None:
    times = [
        "2026-11-05T09:00:00.000Z",  # on time
        "2026-11-03T10:29:59.000Z",  # 48 h and a second before arrival: late
        "2026-11-03T10:30:00.000Z",  # exactly 48 h before: still on time
        "2026-11-01 25:61:00",
        "not-a-time",
        None,
    ]
    stream = make_stream(tmp_path, [event(i, t) for i, t in enumerate(times)])
    store = ObjectStore((tmp_path / "objects").as_uri())

    drain_to_landing(stream, store)

    rows = landed(store)
    by = dict(zip(rows["_sequence"], rows["_partitioned_by"], strict=True))
    assert by == {
        0: "event_time",
        1: "arrival_time",
        2: "event_time",
        3: "arrival_time",
        4: "arrival_time",
        5: "arrival_time",
    }
    arrival_hour = store.list_keys("landing/fraud/dt=2026-11-05/hour=10", ".parquet")
    assert store.scan_parquet(arrival_hour).collect()["_sequence"].to_list() == [1, 3, 4, 5]
    assert rows["event_time"].to_list() == times
    stream.close()


def test_the_late_rule_follows_late_after_hours(tmp_path: Path) -> None:
    stream = make_stream(tmp_path, [event(0, "2026-11-01T00:00:00.000Z")])
    store = ObjectStore((tmp_path / "objects").as_uri())
    result = drain_to_landing(stream, store, late_after_hours=24 * 7)
    assert [k.split("/")[2:4] for k in result.files] == [["dt=2026-11-01", "hour=00"]]
    stream.close()


def test_undecodable_payloads_are_quarantined_not_lost(tmp_path: Path) -> None:
    pretty = b'{\n  "event_id": "evt-pretty",\n  "amount": 1\n}'
    payloads = [
        event(0),
        b"not json",
        b"[1, 2]",
        b"",
        event(4, amount="12.50"),
        pretty,
        event(6, card_age_days=1.5),
        b'{"event_id": "evt-a"}{"event_id": "evt-b"}',
        event(8),
    ]
    stream = make_stream(tmp_path, payloads)
    store = ObjectStore((tmp_path / "objects").as_uri())

    result = drain_to_landing(stream, store)

    expected_reasons = {
        1: "payload:json",
        2: "payload:object",
        3: "payload:json",
        4: "amount:type",
        6: "card_age_days:type",
        7: "payload:json",
    }
    assert result.undecodable == len(expected_reasons)
    assert result.records == result.rows_landed + result.undecodable == len(payloads)
    assert result.undecodable_files == (
        "landing/fraud/_undecodable/part-s0-000000000000-000000000008.parquet",
    )
    quarantined = store.scan_parquet(list(result.undecodable_files)).collect()
    assert dict(quarantined.select("_sequence", "reason").rows()) == expected_reasons
    assert dict(quarantined.select("_sequence", "payload").rows()) == {
        seq: payloads[seq] for seq in expected_reasons
    }
    assert quarantined["detail"].null_count() == 0
    rows = landed(store)
    assert rows["_sequence"].to_list() == [0, 5, 8]
    assert rows["event_id"].to_list() == [
        "evt-0000000000000000",
        "evt-pretty",
        "evt-0000000000000008",
    ]
    stream.close()


class KilledBeforeCommit:
    """A stream whose commit never happens, like a drain killed right after writing files."""

    def __init__(self, stream: EmbeddedStream) -> None:
        self.stream = stream
        self.name = stream.name

    @property
    def shard_count(self) -> int:
        return self.stream.shard_count

    def put_records(self, records: Sequence[tuple[bytes, bytes]]) -> list[PutResult]:
        return self.stream.put_records(records)

    def read(self, shard: int, from_sequence: int, max_records: int) -> list[StreamRecord]:
        return self.stream.read(shard, from_sequence, max_records)

    def committed(self, group: str, shard: int) -> int:
        return self.stream.committed(group, shard)

    def commit(self, group: str, shard: int, next_sequence: int) -> None:
        raise KeyboardInterrupt("killed before commit")

    def close(self) -> None:
        self.stream.close()


class KilledOnSecondFile(ObjectStore):
    """An object store whose process dies while writing a batch's second Parquet file."""

    parquet_puts = 0

    def put_parquet(self, key: str, frame: pl.DataFrame) -> str:
        self.parquet_puts += 1
        if self.parquet_puts == 2:
            raise KeyboardInterrupt("killed mid-batch")
        return super().put_parquet(key, frame)


def assert_landed_exactly_once(store: ObjectStore, stream: EmbeddedStream) -> None:
    rows = landed(store)
    expected = [(s, q) for s in range(stream.shard_count) for q in range(stream.end_sequence(s))]
    assert rows.select("_shard", "_sequence").rows() == expected


@pytest.mark.parametrize(
    ("before", "after", "batch_before", "batch_after"),
    [
        (25, 0, 10, 10),  # same batches again
        (5, 7, 10, 10),  # the stream grew: the retried batch is longer than the lost one
        (10, 0, 10, 4),  # batch size changed between the runs
    ],
)
def test_a_drain_killed_before_commit_lands_exactly_once(
    tmp_path: Path, before: int, after: int, batch_before: int, batch_after: int
) -> None:
    times = ["2026-11-05T08:00:00Z", "2026-11-05T09:00:00Z", "2026-11-04T23:00:00Z"]
    stream = make_stream(tmp_path, [event(i, times[i % 3]) for i in range(before)], shards=2)
    store = ObjectStore((tmp_path / "objects").as_uri())
    with pytest.raises(KeyboardInterrupt):
        drain_to_landing(KilledBeforeCommit(stream), store, batch_records=batch_before)
    assert store.list_keys("landing/fraud", ".parquet")  # files were written, offsets not committed
    assert stream.committed("landing", 0) == 0
    stream.put_records([(b"late-%d" % i, event(100 + i, times[i % 3])) for i in range(after)])

    result = drain_to_landing(stream, store, batch_records=batch_after)

    assert result.records == before + after
    assert_landed_exactly_once(store, stream)
    assert sorted(result.files) == store.list_keys("landing/fraud", ".parquet")
    assert drain_to_landing(stream, store).records == 0


def test_a_drain_killed_between_partition_files_lands_exactly_once(tmp_path: Path) -> None:
    times = ["2026-11-05T08:00:00Z", "2026-11-05T09:00:00Z"]
    stream = make_stream(tmp_path, [event(i, times[i % 2]) for i in range(6)])
    store = KilledOnSecondFile((tmp_path / "objects").as_uri())
    with pytest.raises(KeyboardInterrupt):
        drain_to_landing(stream, store)
    assert len(store.list_keys("landing/fraud", ".parquet")) == 1
    stream.put_records([(b"k", event(9, times[1]))])
    drain_to_landing(stream, store)
    assert_landed_exactly_once(store, stream)


def test_each_pass_lands_only_new_records_in_bounded_batches(tmp_path: Path) -> None:
    stream = make_stream(tmp_path, [event(i) for i in range(20)])
    store = ObjectStore((tmp_path / "objects").as_uri())
    first = drain_to_landing(stream, store, batch_records=7)
    assert [k.rsplit("/", 1)[1] for k in first.files] == [
        "part-s0-000000000000-000000000006.parquet",
        "part-s0-000000000007-000000000013.parquet",
        "part-s0-000000000014-000000000019.parquet",
    ]
    assert first.committed == {0: 20}
    assert drain_to_landing(stream, store, batch_records=7).files == ()
    stream.put_records([(b"k", event(20))])
    second = drain_to_landing(stream, store, batch_records=7)
    assert (second.records, second.committed) == (1, {0: 21})
    assert_landed_exactly_once(store, stream)
    stream.close()


def test_groups_and_prefixes_drain_independently(tmp_path: Path) -> None:
    stream = make_stream(tmp_path, [event(i) for i in range(3)])
    store = ObjectStore((tmp_path / "objects").as_uri())
    drain_to_landing(stream, store)
    copy = drain_to_landing(stream, store, group="backfill", prefix="landing/copy")
    assert copy.records == 3
    assert read_landing(store, "landing/copy").collect().height == 3
    stream.close()


def test_reading_an_empty_landing_zone_says_so(tmp_path: Path) -> None:
    store = ObjectStore((tmp_path / "objects").as_uri())
    with pytest.raises(NotFoundError, match="drain_to_landing"):
        read_landing(store, "landing/fraud")


def test_event_times_with_an_offset_are_filed_in_utc(tmp_path: Path) -> None:
    stream = make_stream(tmp_path, [event(0, "2026-11-05T11:45:00+02:00")])
    store = ObjectStore((tmp_path / "objects").as_uri())
    result = drain_to_landing(stream, store)
    assert [k.split("/")[2:4] for k in result.files] == [["dt=2026-11-05", "hour=09"]]
    stream.close()


@pytest.mark.parametrize(
    "options",
    [
        {"batch_records": 0},
        {"late_after_hours": 0},
        {"schema": pl.Schema({"event_id": pl.String()})},
    ],
)
def test_unusable_drain_options_are_refused(tmp_path: Path, options: dict[str, Any]) -> None:
    stream = make_stream(tmp_path, [])
    store = ObjectStore((tmp_path / "objects").as_uri())
    with pytest.raises(ConfigError):
        drain_to_landing(stream, store, **options)
    stream.close()


def test_a_rewound_offset_is_refused_rather_than_landed_twice(tmp_path: Path) -> None:
    stream = make_stream(tmp_path, [event(i) for i in range(10)])
    store = ObjectStore((tmp_path / "objects").as_uri())
    drain_to_landing(stream, store, batch_records=4)
    stream.commit("landing", 0, 0)
    with pytest.raises(StateError, match="behind records already landed"):
        drain_to_landing(stream, store, batch_records=3)
    assert landed(store).height == 10
    stream.close()
