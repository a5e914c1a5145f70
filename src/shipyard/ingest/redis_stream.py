"""Redis Streams backend (``SHIPYARD_STREAM_URL=redis://HOST:PORT/DB[?prefix=P]``).

Key layout, under ``prefix`` (default ``shipyard``; stream and group names cannot hold ``:``)::

    {prefix}:streams               set of stream names: a stream exists once it is here
    {prefix}:meta:{name}           hash: the spec, an incarnation id, per shard ``end:{s}``,
                                   ``first:{s}``, ``written:{s}``, ``trimmed:{s}`` and each
                                   group's committed offsets ``offset:{group}:{s}``
    {prefix}:stream:{name}:{s}     the Redis stream of shard ``s``

Record ``n`` of a shard is entry ``0-{n+1}``, added with ``XADD ... 0-*``: Redis assigns the
next ID itself, so concurrent producers get distinct, gap-free sequences, and the stream keeps
its last ID after trimming, so a sequence is never handed out twice. Each entry holds ``d``
(payload), ``t`` (arrival ms) and ``o`` (the shard's payload bytes written before it).

Every change is one Lua script, so it is atomic: a put chunk (up to 10,000 records) appends to
each shard it touches and moves the counters together; create and delete touch the registry,
the hash and the streams at once. Scripts check the incarnation id taken at open, so a handle
on a stream deleted (or lost by a Redis restart) meanwhile fails loudly instead of writing to
a new stream from sequence 0; shard streams are only appended with ``NOMKSTREAM``.

Reads run a script that returns up to 2 MB of entries as one flat list of payloads plus
(arrival, count) runs: about three times faster here than parsing ``XRANGE``'s nested reply
(two arrays and seven strings per entry) in redis-py, with or without hiredis.

Retention (``trim``) drops a shard's oldest entries with ``XTRIM MINID``, never at or past
``keep_from[shard]``. The first entry to keep is found by binary search over sequences: the
first whose arrival is within ``retention_hours`` (arrival is taken per batch before the script
runs, so it is monotonic to within a few ms across threads), and the first whose offset ``o``
leaves at most the shard's share of ``retention_bytes`` after it; the later of the two wins.
``ShardStatus.bytes`` is ``written - trimmed``: payload bytes held, without Redis overhead.
Nothing is dropped at write time (no ``MAXLEN``): a record stays until it has landed.

Durability: a record is acknowledged once Redis has applied the script and answered. That
survives a crash of the Shipyard server (``tests/ingest/test_server_crash.py``). Whether it
survives a crash of Redis is Redis's configuration: with ``appendonly no`` (the test machines)
nothing is on disk and a restart loses the streams, which then report themselves gone; with
``appendonly yes`` and ``appendfsync always`` Redis documents an fsync of its AOF for every
write, with ``everysec`` up to about a second of acknowledged records can be lost (neither is
tested here). Replicas are not waited for: no ``WAIT``, and no ``WAITAOF``, which needs Redis
7.2 while the test server is 7.0, so it could not be tested. The store logs a warning when
Redis has ``appendonly`` off. Standalone Redis only: the scripts touch several keys, which
Redis Cluster would refuse across hash slots.

Writes are never retried by the client: a lost answer may mean the records were stored, so a
silent retry could store them twice; the caller sees a ``StorageError`` and decides.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from shipyard.core.errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    StateError,
    StorageError,
)
from shipyard.core.types import PutResult, StreamRecord
from shipyard.ingest import _redis_lua as lua
from shipyard.ingest._redis_target import RedisTarget
from shipyard.ingest._shardlog import RecordBatch
from shipyard.ingest.backend import (
    ShardStatus,
    StreamSpec,
    StreamStatus,
    check_name,
    check_read_range,
    records_of,
    results_in_order,
    shard_of,
    split_records,
)
from shipyard.ingest.stream import MAX_RECORD_BYTES, wall_clock_ms

BACKEND = "redis"
_log = logging.getLogger(__name__)
_warned: set[str] = set()  # servers already warned about, so a process says it once

# One script call holds Redis for a few ms at most: bigger batches are split into chunks.
_PUT_CHUNK_RECORDS = 10_000
_PUT_CHUNK_BYTES = 32 * 1024 * 1024
_READ_CHUNK_BYTES = 2 * 1024 * 1024
_SPEC_FIELDS = ("shards", "retention_hours", "retention_bytes", "partition_key_field")


class RedisStream:
    """One stream on Redis: per-shard Redis streams plus a hash of counters and offsets.

    Thread-safe (redis-py's pool hands each call its own connection); owns its client.
    """

    def __init__(self, target: RedisTarget, name: str, spec: StreamSpec, incarnation: str) -> None:
        self.name = name
        self._target = target
        self._spec = spec
        self._incarnation = incarnation
        self._meta = target.meta(name)
        self._logs = [target.log(name, shard) for shard in range(spec.shards)]
        self._client = target.connect()
        self._put = self._client.register_script(lua.PUT)
        self._read = self._client.register_script(lua.READ)
        self._trim = self._client.register_script(lua.TRIM)
        self._commit = self._client.register_script(lua.COMMIT)
        self._closed = False

    @property
    def shard_count(self) -> int:
        return self._spec.shards

    @property
    def spec(self) -> StreamSpec:
        return self._spec

    def shard_for(self, partition_key: bytes) -> int:
        """crc32 of the key, as the embedded stream does, so keys land on the same shards."""
        return shard_of(partition_key, self._spec.shards)

    def put_records(self, records: Sequence[tuple[bytes, bytes]]) -> list[PutResult]:
        """Append (partition key, data) pairs; results in input order once Redis has them all.

        Atomic per chunk of 10,000 records: if this raises, earlier chunks may be stored
        although none was acknowledged, so a producer that retries can duplicate.
        """
        self._check_open()
        if not records:
            return []
        shard_ids, payloads = split_records(
            records, self._spec.shards, MAX_RECORD_BYTES, f"the {MAX_RECORD_BYTES}-byte limit"
        )
        arrival_ms = str(wall_clock_ms())
        results: list[PutResult] = []
        for start, stop in _chunks(payloads):
            results += self._put_chunk(shard_ids[start:stop], payloads[start:stop], arrival_ms)
        return results

    def _put_chunk(
        self, shard_ids: list[int], payloads: list[bytes], arrival_ms: str
    ) -> list[PutResult]:
        positions: dict[int, list[int]] = {}
        for position, shard in enumerate(shard_ids):
            positions.setdefault(shard, []).append(position)
        shards = sorted(positions)
        args: list[bytes | str | int] = [self._incarnation, arrival_ms, *shards]
        args += [len(positions[shard]) for shard in shards]
        for shard in shards:
            args += [payloads[p] for p in positions[shard]]
        keys = [self._meta, *(self._logs[shard] for shard in shards)]
        firsts = self._run(self._put, keys, args, "append records")
        return results_in_order(
            shard_ids, {shard: int(first) for shard, first in zip(shards, firsts, strict=True)}
        )

    def read(self, shard: int, from_sequence: int, max_records: int) -> list[StreamRecord]:
        """Up to ``max_records`` records of ``shard`` from ``from_sequence`` on, in order."""
        return records_of(self.read_batch(shard, from_sequence, max_records))

    def read_batch(self, shard: int, from_sequence: int, max_records: int) -> RecordBatch:
        """What ``read`` returns, as columns, fetched about 2 MB per script call."""
        self._check_open()
        check_read_range(from_sequence, max_records)
        log = self._log(shard)
        batch = RecordBatch(shard, [], [], [])
        start = f"0-{from_sequence + 1}"
        while len(batch) < max_records:
            args = [self._incarnation, start, max_records - len(batch), _READ_CHUNK_BYTES]
            reply = self._run(self._read, [self._meta, log], args, "read records")
            if not reply:
                break
            more = self._append_chunk(batch, reply, log)
            start = f"({reply[1].decode()}"
            if not more:
                break
        return batch

    def _append_chunk(self, batch: RecordBatch, reply: list[Any], log: str) -> bool:
        first_id, last_id, payloads, runs, more = reply
        first, last = int(first_id[2:]) - 1, int(last_id[2:]) - 1
        expected = batch.sequences[-1] + 1 if batch.sequences else first
        if first != expected or last - first + 1 != len(payloads):
            raise IntegrityError(
                f"{log} on {self._target.shown} has a hole between sequences {expected} and "
                f"{last}: entries were deleted outside Shipyard"
            )
        batch.payloads.extend(payloads)
        batch.sequences.extend(range(first, last + 1))
        for at in range(0, len(runs), 2):
            batch.arrival_ms.extend(itertools.repeat(int(runs[at]), runs[at + 1]))
        return bool(more)

    def end_sequence(self, shard: int) -> int:
        """The sequence number the next record appended to ``shard`` will get."""
        return self._counters(shard, f"end:{shard}")

    def committed(self, group: str, shard: int) -> int:
        """The next sequence ``group`` has not consumed in ``shard`` (0 for a new group)."""
        check_name("consumer group", group)
        return self._counters(shard, f"offset:{group}:{shard}")

    def commit(self, group: str, shard: int, next_sequence: int) -> None:
        """Record that ``group`` consumed ``shard`` below ``next_sequence`` (HSET: atomic)."""
        self._check_open()
        check_name("consumer group", group)
        self._log(shard)
        if next_sequence < 0:
            raise self._out_of_range(group, shard, next_sequence, self.end_sequence(shard))
        args = [self._incarnation, shard, group, next_sequence]
        try:
            self._run(self._commit, [self._meta], args, "commit an offset")
        except redis.ResponseError as exc:
            end = int(str(exc).split("SHIPYARD_RANGE ")[-1].split()[0])
            raise self._out_of_range(group, shard, next_sequence, end) from None

    def _out_of_range(self, group: str, shard: int, next_sequence: int, end: int) -> StateError:
        return StateError(
            f"cannot commit group {group!r} of stream {self.name!r} shard {shard} to "
            f"{next_sequence}: the shard holds sequences 0..{end - 1}, so commit at most {end}"
        )

    def trim(self, now_ms: int, keep_from: dict[int, int]) -> int:
        """Drop records past retention, never at or after ``keep_from[shard]``; how many went.

        A shard missing from ``keep_from`` keeps everything.
        """
        self._check_open()
        cutoff = now_ms - self._spec.retention_ms
        limit = self._spec.shard_retention_bytes
        byte_limit = -1 if limit is None else limit
        dropped = 0
        for shard, log in enumerate(self._logs):
            keep = max(0, keep_from.get(shard, 0))
            args = [self._incarnation, shard, cutoff, byte_limit, keep]
            dropped += int(self._run(self._trim, [self._meta, log], args, "trim records"))
        return dropped

    def describe(self) -> StreamStatus:
        """Shards (held range, payload bytes held) and consumer-group offsets."""
        self._check_open()
        with self._target.errors(f"describe stream {self.name!r}"):
            raw: dict[bytes, bytes] = self._client.hgetall(self._meta)  # type: ignore[assignment]
        fields = {key.decode(): value.decode() for key, value in raw.items()}
        if fields.get("incarnation") != self._incarnation:
            raise self._gone()
        shards = tuple(
            ShardStatus(
                shard=s,
                end_sequence=int(fields[f"end:{s}"]),
                bytes=int(fields[f"written:{s}"]) - int(fields[f"trimmed:{s}"]),
                first_sequence=int(fields[f"first:{s}"]),
            )
            for s in range(self.shard_count)
        )
        groups: dict[str, list[int]] = {}
        for key, value in fields.items():
            if key.startswith("offset:"):
                group, shard = key[len("offset:") :].rsplit(":", 1)
                groups.setdefault(group, [0] * self.shard_count)[int(shard)] = int(value)
        offsets = {group: tuple(groups[group]) for group in sorted(groups)}
        return StreamStatus(self.name, BACKEND, shards, offsets)

    def close(self) -> None:
        """Close this stream's connections; later calls raise ``StateError``."""
        if not self._closed:
            self._closed = True
            self._client.close()

    def __enter__(self) -> RedisStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _counters(self, shard: int, field: str) -> int:
        self._check_open()
        self._log(shard)
        with self._target.errors(f"read stream {self.name!r}"):
            incarnation, value = self._client.hmget(self._meta, ["incarnation", field])
        if incarnation is None or _text(incarnation) != self._incarnation:
            raise self._gone()
        return 0 if value is None else int(value)

    def _run(self, script: Any, keys: list[str], args: list[Any], action: str) -> Any:
        with self._target.errors(f"{action} of stream {self.name!r}"):
            try:
                return script(keys=keys, args=args)
            except redis.ResponseError as exc:
                message = str(exc)
                if "SHIPYARD_GONE" in message:
                    raise self._gone() from None
                if hole := re.search(r"SHIPYARD_HOLE (\d+)", message):
                    raise IntegrityError(
                        f"stream {self.name!r} on {self._target.shown} lacks sequence "
                        f"{hole[1]}: entries were deleted outside Shipyard"
                    ) from None
                if "SHIPYARD_RANGE" in message:
                    raise
                raise StorageError(
                    f"Redis at {self._target.shown} refused to {action} of stream "
                    f"{self.name!r}: {exc}"
                ) from None

    def _gone(self) -> StorageError:
        return StorageError(
            f"stream {self.name!r} is no longer on Redis at {self._target.shown}: it was "
            "deleted, or Redis restarted without persistence; create it again"
        )

    def _log(self, shard: int) -> str:
        if not 0 <= shard < len(self._logs):
            raise NotFoundError(
                f"stream {self.name!r} has no shard {shard}; "
                f"its shards are 0..{len(self._logs) - 1}"
            )
        return self._logs[shard]

    def _check_open(self) -> None:
        if self._closed:
            raise StateError(f"stream {self.name!r} is closed; open it again to use it")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _chunks(payloads: list[bytes]) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges of at most 10,000 records and about 32 MB each."""
    start, size = 0, 0
    for position, payload in enumerate(payloads):
        if position > start and (
            position - start >= _PUT_CHUNK_RECORDS or size + len(payload) > _PUT_CHUNK_BYTES
        ):
            yield start, position
            start, size = position, 0
        size += len(payload)
    yield start, len(payloads)


class RedisStore:
    """The streams under one key prefix of one Redis database (``?prefix=``, default shipyard)."""

    backend = BACKEND

    def __init__(self, url: str) -> None:
        self._target = RedisTarget(url)
        self._client = self._target.connect()
        self._create = self._client.register_script(lua.CREATE)
        self._delete = self._client.register_script(lua.DELETE)
        self._checked = False

    def create(self, name: str, spec: StreamSpec) -> RedisStream:
        check_name("stream", name)
        self._check_server()
        incarnation = uuid.uuid4().hex
        fields: dict[str, object] = {"incarnation": incarnation, **spec.to_json()}
        for shard in range(spec.shards):
            for counter in ("end", "first", "written", "trimmed"):
                fields[f"{counter}:{shard}"] = 0
        args: list[Any] = [name]
        for key, value in fields.items():
            if value is not None:
                args += [key, str(value)]
        keys = [self._target.registry, self._target.meta(name)]
        keys += [self._target.log(name, shard) for shard in range(spec.shards)]
        with self._target.errors(f"create stream {name!r}"):
            created = self._create(keys=keys, args=args)
        if not created:
            raise StateError(f"stream {name!r} already exists on {self._target.shown}")
        return RedisStream(self._target, name, spec, incarnation)

    def open(self, name: str) -> RedisStream:
        incarnation, spec = self._stored(name)
        return RedisStream(self._target, name, spec, incarnation)

    def names(self) -> list[str]:
        self._check_server()
        with self._target.errors("list streams"):
            members: set[bytes] = self._client.smembers(self._target.registry)  # type: ignore[assignment]
        return sorted(member.decode() for member in members)

    def delete(self, name: str) -> None:
        """Remove the registry entry, the hash and every shard's stream, in one script."""
        _, spec = self._stored(name)
        keys = [self._target.registry, self._target.meta(name)]
        keys += [self._target.log(name, shard) for shard in range(spec.shards)]
        with self._target.errors(f"delete stream {name!r}"):
            deleted = self._delete(keys=keys, args=[name])
        if not deleted:
            raise NotFoundError(f"no stream {name!r} on Redis at {self._target.shown}")

    def close(self) -> None:
        """Close the store's connections; streams it opened keep their own."""
        self._client.close()

    def _stored(self, name: str) -> tuple[str, StreamSpec]:
        """The incarnation id and spec of stream ``name``; NotFoundError naming the known ones."""
        check_name("stream", name)
        self._check_server()
        with self._target.errors(f"open stream {name!r}"):
            raw = self._client.hmget(self._target.meta(name), ["incarnation", *_SPEC_FIELDS])
        incarnation, *values = raw
        if incarnation is None:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(
                f"no stream {name!r} on Redis at {self._target.shown} (prefix "
                f"{self._target.prefix!r}); known streams: {known}. Create it first"
            )
        stored: dict[str, object] = {
            key: _text(value)
            for key, value in zip(_SPEC_FIELDS, values, strict=True)
            if value is not None
        }
        return _text(incarnation), StreamSpec.from_json(stored)

    def _check_server(self) -> None:
        """Once per store: Redis >= 7.0 (``0-*`` IDs); warn once if it keeps nothing on disk."""
        if self._checked:
            return
        with self._target.errors("reach the stream backend"):
            info: dict[str, Any] = self._client.info("server")
            persistence: dict[str, Any] = self._client.info("persistence")
        version = tuple(int(part) for part in str(info["redis_version"]).split(".")[:2])
        if version < (7, 0):
            raise ConfigError(
                f"Redis at {self._target.shown} is {info['redis_version']}; the Redis Streams "
                "backend needs Redis 7.0 or newer"
            )
        if not persistence.get("aof_enabled") and self._target.shown not in _warned:
            _warned.add(self._target.shown)
            _log.warning(
                "Redis at %s has appendonly off: acknowledged records survive a Shipyard crash "
                "but not a Redis restart",
                self._target.shown,
            )
        self._checked = True
