"""The landing drain: stream records -> Parquet files partitioned by event date and hour.

A drain pass, per shard: read a batch from the consumer group's committed offset, decode the
JSON payloads, write one Parquet file per ``dt=YYYY-MM-DD/hour=HH`` partition, then commit.

Exactly once in the landing zone: file names depend only on the shard and the batch's first
and last sequence, and before writing a batch the drain records the keys it is about to write
in ``{prefix}/_drain/{group}/s{shard}.json``. If it dies before committing, the next pass finds
that record still ahead of the committed offset and deletes those keys before landing the
records again, so a retried batch never leaves a duplicate, even when the retry's batch
boundaries differ (the stream grew, or ``batch_records`` changed).

The late-arrival rule: a row is filed under the hour of its ``event_time``, unless that does not
parse or is more than ``late_after_hours`` (default 48) before the record's arrival; then it is
filed under its arrival hour, so a late or broken event never reopens an old partition.
``_partitioned_by`` says which rule applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import orjson
import polars as pl

from shipyard.core.errors import ConfigError, DataError, NotFoundError, StateError
from shipyard.core.interfaces import Stream
from shipyard.ingest.stream import RecordBatch
from shipyard.storage import ObjectStore

LANDING_GROUP = "landing"
DEFAULT_LATE_AFTER_HOURS = 48.0

# ISO 8601 with optional fraction and a 'Z' or '+hh:mm' zone, e.g. 2026-11-01T00:00:00.123Z.
_EVENT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
_UNDECODABLE = "_undecodable"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainResult:
    """What one drain pass landed.

    ``files`` are the keys of landing files and ``undecodable_files`` of quarantine files, in
    write order; ``rows_per_key`` covers both; ``records`` = rows landed + ``undecodable``;
    ``committed`` maps every shard to its committed offset.
    """

    files: tuple[str, ...]
    undecodable_files: tuple[str, ...]
    rows_per_key: dict[str, int]
    records: int
    undecodable: int
    committed: dict[int, int]

    @property
    def rows_landed(self) -> int:
        return sum(self.rows_per_key[key] for key in self.files)


@dataclass
class _Tally:
    files: list[str] = field(default_factory=list)
    undecodable_files: list[str] = field(default_factory=list)
    rows_per_key: dict[str, int] = field(default_factory=dict)
    records: int = 0
    undecodable: int = 0


def drain_to_landing(
    stream: Stream,
    store: ObjectStore,
    *,
    group: str = LANDING_GROUP,
    prefix: str | None = None,
    batch_records: int = 200_000,
    late_after_hours: float = DEFAULT_LATE_AFTER_HOURS,
    schema: pl.Schema,
    progress: Callable[[int], None] | None = None,
) -> DrainResult:
    """Land every record ``group`` has not consumed yet, then commit; see the module doc.

    ``schema`` decodes the JSON payloads (a record that does not fit it is quarantined as
    undecodable); the pipeline derives it from the data contract
    (``shipyard.validate.landing_schema``), which ingest does not import.

    A pass stops on a shard when a read returns fewer than ``batch_records`` records, so it
    ends even while producers keep writing. ``progress`` hears how many records each
    committed batch held.
    """
    prefix = (prefix or f"landing/{stream.name}").strip("/")
    if batch_records < 1:
        raise ConfigError(f"batch_records must be >= 1, got {batch_records}")
    if not late_after_hours > 0:
        raise ConfigError(f"late_after_hours must be > 0, got {late_after_hours}")
    if schema.get("event_time") != pl.String():
        raise ConfigError("the landing schema needs a String 'event_time' to partition by")
    late_ms = int(late_after_hours * 3_600_000)
    tally = _Tally()
    committed: dict[int, int] = {}
    for shard in range(stream.shard_count):
        next_sequence = stream.committed(group, shard)
        _discard_unfinished(store, _intent_key(prefix, group, shard), next_sequence)
        while True:
            batch = _read_batch(stream, shard, next_sequence, batch_records)
            if not batch:
                break
            _land_batch(
                batch, store, prefix, _intent_key(prefix, group, shard), schema, late_ms, tally
            )
            next_sequence = batch.sequences[-1] + 1
            stream.commit(group, shard, next_sequence)
            if progress is not None:
                progress(len(batch))
            if len(batch) < batch_records:
                break
        committed[shard] = next_sequence
    return DrainResult(
        files=tuple(tally.files),
        undecodable_files=tuple(tally.undecodable_files),
        rows_per_key=tally.rows_per_key,
        records=tally.records,
        undecodable=tally.undecodable,
        committed=committed,
    )


def read_landing(store: ObjectStore, prefix: str) -> pl.LazyFrame:
    """Every landed row under ``prefix`` (quarantined payloads and drain state excluded)."""
    prefix = prefix.strip("/")
    keys = [
        key
        for key in store.list_keys(prefix, ".parquet")
        if not any(part.startswith("_") for part in key[len(prefix) :].split("/"))
    ]
    if not keys:
        raise NotFoundError(f"nothing has landed under {prefix!r} yet; run drain_to_landing")
    return store.scan_parquet(keys)


def _land_batch(
    batch: RecordBatch,
    store: ObjectStore,
    prefix: str,
    intent_key: str,
    schema: pl.Schema,
    late_ms: int,
    tally: _Tally,
) -> None:
    first, last = batch.sequences[0], batch.sequences[-1]
    name = f"part-s{batch.shard}-{first:012d}-{last:012d}.parquet"
    frame, kept, bad = _decode(batch.payloads, schema)
    frame = _with_partition(_with_ingest_columns(frame, batch, kept), late_ms)
    parts = frame.partition_by("_dt", "_hour", as_dict=True, include_key=False)
    writes: list[tuple[str, pl.DataFrame]] = [
        (f"{prefix}/dt={dt}/hour={hour}/{name}", part)
        for (dt, hour), part in sorted(parts.items(), key=lambda item: str(item[0]))
    ]
    quarantine_key = f"{prefix}/{_UNDECODABLE}/{name}"
    if bad:
        writes.append((quarantine_key, _undecodable_frame(batch, bad)))
    intent = {"first": first, "last": last, "keys": [key for key, _ in writes]}
    store.put_bytes(intent_key, orjson.dumps(intent))
    for key, part in writes:
        store.put_parquet(key, part)
        tally.rows_per_key[key] = part.height
        (tally.undecodable_files if key == quarantine_key else tally.files).append(key)
    tally.records += len(batch)
    tally.undecodable += len(bad)


@runtime_checkable
class _BatchReader(Protocol):
    def read_batch(self, shard: int, from_sequence: int, max_records: int) -> RecordBatch: ...


def _read_batch(stream: Stream, shard: int, from_sequence: int, max_records: int) -> RecordBatch:
    if isinstance(stream, _BatchReader):
        return stream.read_batch(shard, from_sequence, max_records)
    return RecordBatch.of(shard, stream.read(shard, from_sequence, max_records))


def _discard_unfinished(store: ObjectStore, intent_key: str, committed: int) -> None:
    """Delete files a pass wrote for records it never committed (it died before commit)."""
    if not store.exists(intent_key):
        return
    intent = orjson.loads(store.get_bytes(intent_key))
    if intent["first"] < committed:
        return
    if intent["first"] > committed:
        raise StateError(
            f"the committed offset {committed} is behind records already landed "
            f"({intent['first']}..{intent['last']} and before); landing them again would "
            "duplicate them: drain to a new prefix, or remove the landed files first"
        )
    _log.info(
        "removing %d landing files of uncommitted records %d..%d before landing them again",
        len(intent["keys"]),
        intent["first"],
        intent["last"],
    )
    for key in intent["keys"]:
        store.delete(key)


def _intent_key(prefix: str, group: str, shard: int) -> str:
    return f"{prefix}/_drain/{group}/s{shard}.json"


def _decode(
    payloads: list[bytes], schema: pl.Schema
) -> tuple[pl.DataFrame, list[int] | None, list[tuple[int, str, str]]]:
    """Rows for the payloads that fit ``schema``; ``kept`` is None when every payload did.

    Undecodable payloads come back as (position, reason code, detail); reason codes follow
    validation's ``{column}:{check}`` form: ``payload:json``, ``payload:object``, ``amount:type``.
    """
    blob = b"\n".join(payloads)
    # One payload per line, or a payload with a raw newline would shift every row after it.
    if blob.count(b"\n") == len(payloads) - 1:
        try:
            frame = pl.read_ndjson(blob, schema=schema)
        except pl.exceptions.PolarsError as exc:
            _log.debug("batch has undecodable payloads (%s); decoding one by one", exc)
        else:
            if frame.height == len(payloads):
                return frame, None, []
    return _decode_each(payloads, schema)


def _decode_each(
    payloads: list[bytes], schema: pl.Schema
) -> tuple[pl.DataFrame, list[int], list[tuple[int, str, str]]]:
    lines: list[bytes] = []
    positions: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for position, payload in enumerate(payloads):
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            bad.append((position, "payload:json", str(exc)))
            continue
        if not isinstance(value, dict):
            bad.append((position, "payload:object", f"a JSON {type(value).__name__}"))
            continue
        lines.append(orjson.dumps(value))  # one line, whatever whitespace it arrived with
        positions.append(position)
    frames: list[pl.DataFrame] = []
    kept: list[int] = []
    _parse_halves(lines, positions, schema, frames, kept, bad)
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    bad.sort()
    return frame, kept, bad


def _parse_halves(
    lines: list[bytes],
    positions: list[int],
    schema: pl.Schema,
    frames: list[pl.DataFrame],
    kept: list[int],
    bad: list[tuple[int, str, str]],
) -> None:
    """Parse ``lines`` with the fast reader, splitting in halves to isolate rows it refuses."""
    if not lines:
        return
    try:
        frame = pl.read_ndjson(b"\n".join(lines), schema=schema)
    except pl.exceptions.PolarsError as exc:
        if len(lines) == 1:
            bad.append((positions[0], _type_reason(lines[0], schema), str(exc)))
            return
        middle = len(lines) // 2
        _parse_halves(lines[:middle], positions[:middle], schema, frames, kept, bad)
        _parse_halves(lines[middle:], positions[middle:], schema, frames, kept, bad)
        return
    if frame.height != len(lines):
        raise DataError(f"NDJSON reader returned {frame.height} rows for {len(lines)} objects")
    frames.append(frame)
    kept.extend(positions)


def _type_reason(line: bytes, schema: pl.Schema) -> str:
    """Reason codes naming the fields whose JSON type does not fit ``schema``."""
    value = orjson.loads(line)
    misfits = [
        f"{name}:type"
        for name, dtype in schema.items()
        if value.get(name) is not None and not _fits(value[name], dtype)
    ]
    return ",".join(misfits) or "payload:type"


def _fits(value: object, dtype: pl.DataType) -> bool:
    if isinstance(value, bool):
        return dtype == pl.Boolean() or dtype == pl.String()
    if dtype == pl.Int64():
        return isinstance(value, int) and -(2**63) <= value < 2**63
    if dtype == pl.Float64():
        return isinstance(value, int | float)
    if dtype == pl.Boolean():
        return False
    return True


def _with_ingest_columns(
    frame: pl.DataFrame, batch: RecordBatch, kept: list[int] | None
) -> pl.DataFrame:
    sequences, arrivals = batch.sequences, batch.arrival_ms
    if kept is not None:
        sequences, arrivals = [sequences[i] for i in kept], [arrivals[i] for i in kept]
    return frame.with_columns(
        pl.lit(batch.shard, dtype=pl.Int32()).alias("_shard"),
        pl.Series("_sequence", sequences, dtype=pl.Int64()),
        pl.Series("_arrival_ms", arrivals, dtype=pl.Int64()),
    )


def _with_partition(frame: pl.DataFrame, late_ms: int) -> pl.DataFrame:
    """Add ``_partitioned_by`` and the ``_dt``/``_hour`` partition keys (dropped on write)."""
    event_ms = (
        pl.col("event_time")
        .str.to_datetime(_EVENT_TIME_FORMAT, time_unit="ms", time_zone="UTC", strict=False)
        .dt.epoch("ms")
    )
    arrival_ms = pl.col("_arrival_ms")
    by_event = pl.col("_event_ms").is_not_null() & (pl.col("_event_ms") >= arrival_ms - late_ms)
    partition_time = pl.from_epoch(
        pl.when(pl.col("_by_event")).then(pl.col("_event_ms")).otherwise(arrival_ms),
        time_unit="ms",
    )
    # Staged, so the timestamp parse runs once rather than once per expression that uses it.
    return (
        frame.with_columns(event_ms.alias("_event_ms"))
        .with_columns(by_event.alias("_by_event"))
        .with_columns(
            pl.when(pl.col("_by_event"))
            .then(pl.lit("event_time"))
            .otherwise(pl.lit("arrival_time"))
            .alias("_partitioned_by"),
            partition_time.dt.strftime("%Y-%m-%d").alias("_dt"),
            partition_time.dt.strftime("%H").alias("_hour"),
        )
        .drop("_event_ms", "_by_event")
    )


def _undecodable_frame(batch: RecordBatch, bad: list[tuple[int, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_shard": pl.Series([batch.shard] * len(bad), dtype=pl.Int32()),
            "_sequence": pl.Series([batch.sequences[i] for i, _, _ in bad], dtype=pl.Int64()),
            "_arrival_ms": pl.Series([batch.arrival_ms[i] for i, _, _ in bad], dtype=pl.Int64()),
            "payload": pl.Series([batch.payloads[i] for i, _, _ in bad], dtype=pl.Binary()),
            "reason": pl.Series([reason for _, reason, _ in bad], dtype=pl.String()),
            "detail": pl.Series([detail for _, _, detail in bad], dtype=pl.String()),
        }
    )
