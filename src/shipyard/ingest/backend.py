"""What every stream backend offers the ingest layer: streams with a spec, bulk reads, status.

Three backends implement these shapes, chosen by ``SHIPYARD_STREAM_URL``: the embedded log
(``embedded``, the default), NATS JetStream (``nats://``) and Redis Streams (``redis://``).
A ``StreamStore`` creates and finds the streams of one backend; a ``StreamBackend`` is one
stream. Sequence numbers are per shard, start at 0 and grow by one per record, on every
backend, so offsets and landing file names mean the same whichever backend holds the records.

Retention (``StreamSpec.retention_hours`` and ``retention_bytes``) is applied by ``trim``,
which the drain worker calls after each pass: a record goes once it is older than the
retention period, or once its shard holds more than its share of ``retention_bytes``, but
never before the landing group has committed past it. The landing zone is the system of
record, so retention never takes away a record that has not landed.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shipyard.core.errors import InvalidRequestError
from shipyard.core.interfaces import Stream
from shipyard.core.types import PutResult, StreamRecord
from shipyard.ingest._shardlog import RecordBatch

DEFAULT_PARTITION_KEY_FIELD = "card_id"
DEFAULT_RETENTION_HOURS = 24.0
MAX_SHARDS = 1024
# Kinesis allows 1 day to 365 days; shorter periods are allowed here for tests and demos.
MAX_RETENTION_HOURS = 365 * 24.0

_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")


def check_name(kind: str, name: str) -> str:
    """Refuse names that are not 1-128 of [a-zA-Z0-9_.-] or that are path tricks."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise InvalidRequestError(
            f"{kind} name {name!r} is not usable: use 1-128 letters, digits, '_', '.' or '-'"
        )
    return name


def records_of(batch: RecordBatch) -> list[StreamRecord]:
    """``read``'s answer from ``read_batch``'s columns: every backend's ``read``."""
    return [
        StreamRecord(batch.shard, sequence, data, arrival_ms)
        for sequence, data, arrival_ms in zip(
            batch.sequences, batch.payloads, batch.arrival_ms, strict=True
        )
    ]


def shard_of(partition_key: bytes, shards: int) -> int:
    """crc32 of the key: the same shard in every process, release and backend."""
    return zlib.crc32(partition_key) % shards


def split_records(
    records: Sequence[tuple[bytes, bytes]], shards: int, max_bytes: int, limit: str
) -> tuple[list[int], list[bytes]]:
    """Each record's shard and its payload, after refusing what no backend may store.

    ``limit`` names the size limit ``max_bytes`` for the error, e.g. "the 1024-byte limit".
    """
    try:
        shard_ids = [zlib.crc32(key) % shards for key, _ in records]
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"put_records takes (partition key, data) pairs of bytes: {exc}"
        ) from None
    payloads = [data for _, data in records]
    if not set(map(type, payloads)) <= {bytes}:
        raise InvalidRequestError("record data must be bytes; encode text before putting it")
    longest = max(map(len, payloads))
    if longest > max_bytes:
        raise InvalidRequestError(f"a record of {longest} bytes exceeds {limit}")
    return shard_ids, payloads


def check_read_range(from_sequence: int, max_records: int) -> None:
    if from_sequence < 0 or max_records < 0:
        raise InvalidRequestError(
            f"from_sequence and max_records must be >= 0, got {from_sequence}, {max_records}"
        )


def results_in_order(shard_ids: list[int], first_by_shard: dict[int, int]) -> list[PutResult]:
    """Each record's result in input order, from the first sequence each shard's write got."""
    next_sequence = dict(first_by_shard)
    results = []
    for shard in shard_ids:
        results.append(PutResult(shard, next_sequence[shard]))
        next_sequence[shard] += 1
    return results


@dataclass(frozen=True)
class StreamSpec:
    """How a stream is created: shards, retention, and the NDJSON partition-key field."""

    shards: int = 2
    retention_hours: float = DEFAULT_RETENTION_HOURS
    # The whole stream's budget; each shard keeps at most its equal share.
    retention_bytes: int | None = None
    partition_key_field: str = DEFAULT_PARTITION_KEY_FIELD

    def __post_init__(self) -> None:
        if isinstance(self.shards, bool) or not isinstance(self.shards, int):
            raise InvalidRequestError(f"shards must be an integer, got {self.shards!r}")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise InvalidRequestError(f"shards must be 1..{MAX_SHARDS}, got {self.shards}")
        hours = self.retention_hours
        if (
            isinstance(hours, bool)
            or not isinstance(hours, int | float)
            or not math.isfinite(hours)
            or not 0 < hours <= MAX_RETENTION_HOURS
        ):
            raise InvalidRequestError(
                f"retention_hours must be a number in (0, {MAX_RETENTION_HOURS:g}], got {hours!r}"
            )
        size = self.retention_bytes
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise InvalidRequestError(
                f"retention_bytes must be a positive integer or absent, got {size!r}"
            )
        key = self.partition_key_field
        if not isinstance(key, str) or not key:
            raise InvalidRequestError(
                f"partition_key_field must be a non-empty string, got {key!r}"
            )

    @property
    def retention_ms(self) -> int:
        return int(self.retention_hours * 3_600_000)

    @property
    def shard_retention_bytes(self) -> int | None:
        """Each shard's share of ``retention_bytes``."""
        if self.retention_bytes is None:
            return None
        return max(1, self.retention_bytes // self.shards)

    def to_json(self) -> dict[str, object]:
        return {
            "shards": self.shards,
            "retention_hours": self.retention_hours,
            "retention_bytes": self.retention_bytes,
            "partition_key_field": self.partition_key_field,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StreamSpec:
        """Read what ``to_json`` wrote; keys a stream written before them lacks get defaults."""
        size = data.get("retention_bytes")
        return cls(
            shards=int(str(data["shards"])),
            retention_hours=float(str(data.get("retention_hours", DEFAULT_RETENTION_HOURS))),
            retention_bytes=None if size is None else int(str(size)),
            partition_key_field=str(data.get("partition_key_field", DEFAULT_PARTITION_KEY_FIELD)),
        )


@dataclass(frozen=True)
class ShardStatus:
    """One shard: the first sequence still held, the next it will write, and its bytes."""

    shard: int
    end_sequence: int
    bytes: int
    first_sequence: int = 0

    @property
    def records(self) -> int:
        return self.end_sequence - self.first_sequence


@dataclass(frozen=True)
class StreamStatus:
    """A stream's state for status pages: shards and each consumer group's offsets."""

    name: str
    backend: str
    shards: tuple[ShardStatus, ...]
    groups: dict[str, tuple[int, ...]]

    @property
    def records(self) -> int:
        """Records ever written (sequences handed out), trimmed ones included."""
        return sum(s.end_sequence for s in self.shards)


class StreamBackend(Stream, Protocol):
    """One stream of a backend: ``Stream`` plus bulk reads, status, spec and retention."""

    @property
    def spec(self) -> StreamSpec: ...

    def read_batch(self, shard: int, from_sequence: int, max_records: int) -> RecordBatch:
        """What ``read`` returns, as columns. Records trimmed by retention are skipped: the
        batch may start after ``from_sequence``."""
        ...

    def end_sequence(self, shard: int) -> int: ...

    def describe(self) -> StreamStatus: ...

    def trim(self, now_ms: int, keep_from: dict[int, int]) -> int:
        """Drop records past retention, never at or after ``keep_from[shard]``; how many went."""
        ...


class StreamStore(Protocol):
    """The streams of one backend: create, open, list. One store per process and backend."""

    backend: str

    def create(self, name: str, spec: StreamSpec) -> StreamBackend:
        """A new stream; ``StateError`` if ``name`` exists (with any spec)."""
        ...

    def open(self, name: str) -> StreamBackend:
        """An existing stream; ``NotFoundError`` naming the known streams if it does not exist."""
        ...

    def names(self) -> list[str]: ...

    def delete(self, name: str) -> None:
        """Remove the stream and its records and offsets (Kinesis DeleteStream); the stream
        must not be open in this process. ``NotFoundError`` if it does not exist."""
        ...

    def close(self) -> None:
        """Release the store's connections; streams it opened are closed by their owners."""
        ...
