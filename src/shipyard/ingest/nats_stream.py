"""NATS JetStream as the stream backend: ``SHIPYARD_STREAM_URL=nats://HOST:4222[?prefix=NAME]``.

Layout of stream ``fraud`` with 2 shards under the prefix ``shipyard`` (the default)::

    JetStream stream shipyard_fraud_0, _1   one per shard, subject shipyard.fraud.{shard},
                                            file storage, no limits (retention is ``trim``)
    KV bucket shipyard_fraud_meta           key ``spec``: the StreamSpec; the stream exists
                                            once this key does. Keys ``g.{group}.{shard}``:
                                            committed offsets of each consumer group.

Names: JetStream names allow no '.', so in stream, subject and key names '_' becomes '__' and
'.' becomes '_d' (``a.b`` -> ``a_db``); a name whose escaped form is long gets a hash instead.

Sequences: one JetStream stream per shard, so a shard's sequence is its JetStream stream
sequence minus one: contiguous from 0, assigned by the server in arrival order, never reused
after a purge. ``put_records`` publishes every record at once and waits for all the acks;
each record's sequence is the one in its ack. It is all or error: if any publish fails or
is not acknowledged in time it raises, and records already stored stay (a retry duplicates).
Records are partitioned by ``zlib.crc32(key) % shards``, as the embedded stream does.

Durability, honestly: JetStream acknowledges a publish once its file store has taken the
message, which survives a crash of the Shipyard process (tested by SIGKILL). It is not
fsynced then: the server hands writes to the operating system and fsyncs on a timer, every
2 minutes by default (``sync_interval``; servers that support ``sync_interval: always`` fsync
every write), so a power cut or kernel crash of the NATS host can lose acknowledged records;
a crash of nats-server itself is not tested here. Committed offsets live in JetStream too,
with the same guarantee.

Arrival time is the JetStream message timestamp, set by the NATS server when it stores the
record (its clock, not the producer's); no header is added, so a record may be as large as
the server's ``max_payload``.

Retention (``trim``) purges a shard's JetStream stream up to a sequence: records that arrived
before ``now - retention`` (found with a consumer that starts by time), and the oldest records
beyond the shard's share of ``retention_bytes`` (bytes as JetStream counts them: payload,
subject and about 30 bytes of framing; dropped by the shard's average record size, so it may
keep slightly fewer bytes than the budget when sizes vary). Never at or past the landing
group's offset. JetStream's own max_age/max_bytes are not used: they would drop unlanded
records.

Reads create an ephemeral pull consumer at the start sequence and fetch in chunks bounded by
count and bytes, then delete it (``_nats_io``). Each store and each stream owns one NATS
connection driven by its own event loop thread (``_nats_link``), so the sync methods work from
any thread; a server that is down is a ``StorageError`` naming its URL within about a second.
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from nats.js.api import StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shipyard.core.errors import NotFoundError, StateError
from shipyard.core.types import PutResult, StreamRecord
from shipyard.ingest._nats_io import Publisher, delete_stream, first_since, read_range
from shipyard.ingest._nats_link import STREAM_NAME_IN_USE, JetStreamError, NatsLink, NatsTarget
from shipyard.ingest._shardlog import RecordBatch
from shipyard.ingest.backend import (
    ShardStatus,
    StreamSpec,
    StreamStatus,
    check_name,
    check_read_range,
    records_of,
    shard_of,
    split_records,
)

NATS = "nats"
_SPEC_KEY = "spec"
_LONG_TOKEN = 64


def _escape(name: str) -> str:
    return name.replace("_", "__").replace(".", "_d")


def _unescape(token: str) -> str:
    out, chars = [], iter(token)
    for char in chars:
        out.append(char if char != "_" else ("_" if next(chars, "") == "_" else "."))
    return "".join(out)


def _stream_token(name: str) -> str:
    """An injective JetStream-safe token for a stream name; long names end in a hash."""
    token = _escape(name)
    if len(token) <= _LONG_TOKEN:
        return token
    # '_h' never comes out of _escape, so a hashed token cannot equal an escaped one.
    return f"{_escape(name[:30])}_h{hashlib.sha256(name.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class _Layout:
    """Where one Shipyard stream lives on the server."""

    prefix: str
    name: str
    token: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", _stream_token(self.name))

    @property
    def bucket(self) -> str:
        return f"{self.prefix}_{self.token}_meta"

    def stream(self, shard: int) -> str:
        return f"{self.prefix}_{self.token}_{shard}"

    def subject(self, shard: int) -> str:
        return f"{self.prefix}.{self.token}.{shard}"


def _group_key(group: str, shard: int) -> str:
    return f"g.{_escape(check_name('consumer group', group))}.{shard}"


class NatsStream:
    """One stream on NATS JetStream; thread-safe; owns its connection until ``close``."""

    def __init__(self, target: NatsTarget, name: str, spec: StreamSpec) -> None:
        self.name = name
        self._spec = spec
        self._layout = _Layout(target.prefix, name)
        self._subjects = [self._layout.subject(s) for s in range(spec.shards)]
        self._link = NatsLink(target, f"stream-{name}")
        # Closed with the stream, or when it is collected without close().
        self._finalizer = weakref.finalize(self, self._link.close)
        self._publisher = Publisher(self._link)
        try:
            self._kv: KeyValue = self._link.call(self._start())
        except BaseException:
            self._finalizer()
            raise

    async def _start(self) -> KeyValue:
        await self._publisher.start()
        return await self._link.nc.jetstream().key_value(self._layout.bucket)

    @property
    def shard_count(self) -> int:
        return self._spec.shards

    @property
    def spec(self) -> StreamSpec:
        return self._spec

    def shard_for(self, partition_key: bytes) -> int:
        return shard_of(partition_key, self._spec.shards)

    def put_records(self, records: Sequence[tuple[bytes, bytes]]) -> list[PutResult]:
        """Publish (partition key, data) pairs; returns once JetStream acknowledged them all."""
        self._check_open()
        if not records:
            return []
        limit = self._link.max_payload
        shard_ids, payloads = split_records(
            records, self._spec.shards, limit, f"the NATS server's max_payload of {limit}"
        )
        subjects = [self._subjects[shard] for shard in shard_ids]
        sequences = self._link.call(self._publisher.publish(subjects, payloads))
        return [PutResult(s, q - 1) for s, q in zip(shard_ids, sequences, strict=True)]

    def read(self, shard: int, from_sequence: int, max_records: int) -> list[StreamRecord]:
        return records_of(self.read_batch(shard, from_sequence, max_records))

    def read_batch(self, shard: int, from_sequence: int, max_records: int) -> RecordBatch:
        """Up to ``max_records`` records of ``shard`` from ``from_sequence`` (or the first
        still held) on, as columns."""
        self._check_shard(shard)
        check_read_range(from_sequence, max_records)
        if max_records == 0:
            return RecordBatch(shard, [], [], [])
        stream = self._layout.stream(shard)
        return self._link.call(read_range(self._link, stream, shard, from_sequence, max_records))

    def end_sequence(self, shard: int) -> int:
        self._check_shard(shard)
        return int(self._state(shard)["last_seq"])

    def committed(self, group: str, shard: int) -> int:
        self._check_shard(shard)
        return self._link.call(self._committed(_group_key(group, shard)))

    async def _committed(self, key: str) -> int:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return 0
        return int(entry.value or b"0")

    def commit(self, group: str, shard: int, next_sequence: int) -> None:
        """Record that ``group`` consumed ``shard`` below ``next_sequence``, in the KV bucket."""
        key = _group_key(group, shard)
        end = self.end_sequence(shard)
        if not 0 <= next_sequence <= end:
            raise StateError(
                f"cannot commit group {group!r} of stream {self.name!r} shard {shard} to "
                f"{next_sequence}: the shard holds sequences 0..{end - 1}, so commit at most {end}"
            )
        self._link.call(self._kv.put(key, b"%d" % next_sequence))

    def trim(self, now_ms: int, keep_from: dict[int, int]) -> int:
        """Purge records past retention by age or size, never at or after ``keep_from``."""
        self._check_open()
        return sum(
            self._link.call(self._trim_shard(shard, now_ms, keep_from.get(shard, 0)))
            for shard in range(self._spec.shards)
        )

    async def _trim_shard(self, shard: int, now_ms: int, keep_from: int) -> int:
        stream, budget = self._layout.stream(shard), self._spec.shard_retention_bytes
        state = (await self._link.api(f"STREAM.INFO.{stream}"))["state"]
        first, ceiling = int(state["first_seq"]), keep_from + 1  # JetStream sequences
        if not state["messages"] or first >= ceiling:
            return 0
        cut = await first_since(self._link, stream, now_ms - self._spec.retention_ms)
        if budget is not None and state["bytes"] > budget:
            average = state["bytes"] / state["messages"]
            cut = max(cut, first + math.ceil((state["bytes"] - budget) / average))
        cut = min(cut, ceiling)
        if cut <= first:
            return 0
        purged = await self._link.api(f"STREAM.PURGE.{stream}", {"seq": cut})
        return int(purged["purged"])

    def describe(self) -> StreamStatus:
        self._check_open()
        shards = []
        for shard in range(self._spec.shards):
            state = self._state(shard)
            end = int(state["last_seq"])
            first = int(state["first_seq"]) - 1 if state["messages"] else end
            shards.append(ShardStatus(shard, end, int(state["bytes"]), first))
        return StreamStatus(self.name, NATS, tuple(shards), self._link.call(self._groups()))

    async def _groups(self) -> dict[str, tuple[int, ...]]:
        bucket = self._layout.bucket
        info = await self._link.api(
            f"STREAM.INFO.KV_{bucket}", {"subjects_filter": f"$KV.{bucket}.g.>"}
        )
        offsets: dict[str, list[int]] = {}
        for subject in sorted(info["state"].get("subjects") or {}):
            _, token, shard = subject[len(f"$KV.{bucket}.") :].split(".")
            group = offsets.setdefault(_unescape(token), [0] * self._spec.shards)
            if int(shard) < len(group):
                group[int(shard)] = await self._committed(f"g.{token}.{shard}")
        return {group: tuple(values) for group, values in sorted(offsets.items())}

    def close(self) -> None:
        """Close the connection; later calls raise ``StateError``."""
        self._finalizer()

    def __enter__(self) -> NatsStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _state(self, shard: int) -> dict[str, Any]:
        info = self._link.call(self._link.api(f"STREAM.INFO.{self._layout.stream(shard)}"))
        state: dict[str, Any] = info["state"]
        return state

    def _check_open(self) -> None:
        if not self._finalizer.alive:
            raise StateError(f"stream {self.name!r} is closed; open it again to use it")

    def _check_shard(self, shard: int) -> None:
        self._check_open()
        if not 0 <= shard < self._spec.shards:
            raise NotFoundError(
                f"stream {self.name!r} has no shard {shard}; "
                f"its shards are 0..{self._spec.shards - 1}"
            )


class NatsStore:
    """The streams of one prefix on a NATS JetStream server."""

    backend = NATS

    def __init__(self, url: str) -> None:
        self.target = NatsTarget.parse(url)
        self._link = NatsLink(self.target, "store")
        self._finalizer = weakref.finalize(self, self._link.close)

    def create(self, name: str, spec: StreamSpec) -> NatsStream:
        check_name("stream", name)
        self._link.call(self._create(_Layout(self.target.prefix, name), spec))
        return NatsStream(self.target, name, spec)

    async def _create(self, layout: _Layout, spec: StreamSpec) -> None:
        js = self._link.nc.jetstream()
        if await self._spec(layout) is not None:
            raise StateError(f"stream {layout.name!r} already exists")
        for shard in range(spec.shards):
            await self._fresh_stream(layout, shard)
        # A bucket without a spec is what a crashed create or delete left: start it over.
        await delete_stream(self._link, f"KV_{layout.bucket}")
        kv = await js.create_key_value(bucket=layout.bucket, history=1, storage=StorageType.FILE)
        meta = {"format": 1, "name": layout.name, **spec.to_json()}
        try:
            await kv.create(_SPEC_KEY, orjson.dumps(meta))  # the stream exists from here
        except KeyWrongLastSequenceError:
            raise StateError(f"stream {layout.name!r} already exists") from None

    async def _fresh_stream(self, layout: _Layout, shard: int) -> None:
        """Create a shard's JetStream stream, empty: leftovers would shift its sequences."""
        name = layout.stream(shard)
        config = {"name": name, "subjects": [layout.subject(shard)], "storage": "file",
                  "retention": "limits", "discard": "old", "max_msgs": -1, "max_bytes": -1,
                  "max_age": 0, "num_replicas": 1, "deny_delete": True,
                  "description": f"Shipyard stream {layout.name!r} shard {shard}"}  # fmt: skip
        try:
            info = await self._link.api(f"STREAM.CREATE.{name}", config)
            if not info["state"]["last_seq"]:
                return
        except JetStreamError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
        await delete_stream(self._link, name)
        await self._link.api(f"STREAM.CREATE.{name}", config)

    def open(self, name: str) -> NatsStream:
        check_name("stream", name)
        spec = self._link.call(self._spec(_Layout(self.target.prefix, name)))
        if spec is None:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(
                f"no stream {name!r} on NATS at {self.target.shown} (prefix "
                f"{self.target.prefix!r}); known streams: {known}. Create it first"
            )
        return NatsStream(self.target, name, spec)

    async def _spec(self, layout: _Layout) -> StreamSpec | None:
        meta = await self._meta(layout.bucket)
        return None if meta is None else StreamSpec.from_json(meta)

    async def _meta(self, bucket: str) -> dict[str, object] | None:
        try:
            kv = await self._link.nc.jetstream().key_value(bucket)
            entry = await kv.get(_SPEC_KEY)
        except (BucketNotFoundError, KeyNotFoundError):
            return None
        meta: dict[str, object] = orjson.loads(entry.value or b"{}")
        return meta

    def names(self) -> list[str]:
        self._check_open()
        return self._link.call(self._names())

    async def _names(self) -> list[str]:
        head, tail = f"KV_{self.target.prefix}_", "_meta"
        streams: list[str] = []
        while True:
            page = await self._link.api("STREAM.NAMES", {"offset": len(streams)})
            streams += page.get("streams") or []
            if not page.get("streams") or len(streams) >= page["total"]:
                break
        names = []
        for stream in streams:
            if stream.startswith(head) and stream.endswith(tail):
                meta = await self._meta(stream[len("KV_") :])
                if meta is not None:
                    names.append(str(meta["name"]))
        return sorted(names)

    def delete(self, name: str) -> None:
        """Remove the spec and offsets (one bucket), then the shards' JetStream streams."""
        check_name("stream", name)
        self._check_open()
        layout = _Layout(self.target.prefix, name)
        self._link.call(self._delete(layout))

    async def _delete(self, layout: _Layout) -> None:
        spec = await self._spec(layout)
        if spec is None:
            raise NotFoundError(f"no stream {layout.name!r} on NATS at {self.target.shown}")
        await delete_stream(self._link, f"KV_{layout.bucket}")  # gone from here on
        for shard in range(spec.shards):
            await delete_stream(self._link, layout.stream(shard))

    def close(self) -> None:
        self._finalizer()

    def _check_open(self) -> None:
        if not self._finalizer.alive:
            raise StateError("the NATS stream store is closed")
