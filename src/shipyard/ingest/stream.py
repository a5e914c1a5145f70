"""The embedded durable stream: a sharded, checksummed, append-only log in a local folder.

Layout of a stream called ``fraud`` under ``root``::

    root/fraud/stream.json          name and shard count; the stream exists once this exists
    root/fraud/shard-0000.log       shard 0's first log segment (format in ``_shardlog``)
    root/fraud/shard-0000-{seq}.log later segments of shard 0, named by their first record
    root/fraud/shard-0000.start     the first record of shard 0 retention has kept
    root/fraud/groups/landing.json  committed offsets of consumer group ``landing``, per shard
    root/fraud/.lock                flock held by the one process that owns the stream

One process owns a stream (the server); other processes reach it through that process.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from shipyard.core.config import EMBEDDED
from shipyard.core.errors import InvalidRequestError, NotFoundError, StateError
from shipyard.core.types import PutResult, StreamRecord
from shipyard.ingest._shardlog import (
    SEGMENT_BYTES,
    ShardLog,
    atomic_write,
    fsync_dir,
    write_new_log,
)

# RecordBatch lives beside the log that reads it; the alias keeps it exported from here too.
from shipyard.ingest._shardlog import RecordBatch as RecordBatch
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

MAX_RECORD_BYTES = 16 * 1024 * 1024

_META = "stream.json"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class EmbeddedStream:
    """A durable sharded log stored in ``root/name``; ``put_records`` returns once fsynced.

    Thread-safe within its process; a second process opening it gets a ``StateError``.

    >>> stream = EmbeddedStream.create(tmp_path, "fraud", shards=2)
    >>> stream.put_records([(b"card-0000001", b'{"amount": 3.5}')])
    [PutResult(shard=0, sequence=0)]
    """

    def __init__(
        self, folder: Path, name: str, spec: StreamSpec, lock_fd: int, clock_ms: Callable[[], int]
    ) -> None:
        # Use create() or open(): they validate the name and hold the writer lock for us.
        self.name = name
        self.folder = folder
        self._spec = spec
        self._lock_fd = lock_fd
        self._clock_ms = clock_ms
        self._closed = False
        self._shards: list[ShardLog] = []
        try:
            for shard in range(spec.shards):
                self._shards.append(ShardLog(folder, shard, _segment_bytes(spec)))
        except BaseException:
            for opened in self._shards:
                opened.close()
            raise
        self._groups: dict[str, list[int]] = {}
        self._groups_lock = threading.Lock()

    @classmethod
    def create(
        cls,
        root: Path | str,
        name: str,
        shards: int = 2,
        *,
        spec: StreamSpec | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> EmbeddedStream:
        """Create the stream (or open it if it exists with the same shard count).

        ``spec`` gives retention and the partition-key field; without it, defaults with
        ``shards`` shards.
        """
        check_name("stream", name)
        spec = spec or StreamSpec(shards=shards)
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock_folder(folder, name)
        try:
            meta_path = folder / _META
            if meta_path.exists():
                existing = _read_meta(meta_path)
                if existing.shards != spec.shards:
                    raise StateError(
                        f"stream {name!r} already exists with {existing.shards} shards, not "
                        f"{spec.shards}; open it with its shard count or create another stream"
                    )
                spec = existing
            else:
                for shard in range(spec.shards):
                    write_new_log(folder / _shard_file(shard))
                (folder / "groups").mkdir(exist_ok=True)
                meta = {"format": 1, "name": name, **spec.to_json()}
                atomic_write(meta_path, orjson.dumps(meta))
                fsync_dir(folder.parent)
            return cls(folder, name, spec, lock_fd, clock_ms)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def open(
        cls, root: Path | str, name: str, *, clock_ms: Callable[[], int] = wall_clock_ms
    ) -> EmbeddedStream:
        """Open an existing stream, cutting away any torn tail a crash left in its logs."""
        check_name("stream", name)
        folder = Path(root) / name
        if not (folder / _META).exists():
            known = ", ".join(cls.known(root)) or "none"
            raise NotFoundError(
                f"no stream {name!r} under {root}; known streams: {known}. Create it first"
            )
        lock_fd = _lock_folder(folder, name)
        try:
            return cls(folder, name, _read_meta(folder / _META), lock_fd, clock_ms)
        except BaseException:
            os.close(lock_fd)
            raise

    @staticmethod
    def known(root: Path | str) -> list[str]:
        """Names of the streams stored under ``root``."""
        base = Path(root)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / _META).is_file())

    @property
    def shard_count(self) -> int:
        return len(self._shards)

    @property
    def spec(self) -> StreamSpec:
        return self._spec

    def shard_for(self, partition_key: bytes) -> int:
        """The shard a key goes to: crc32, so it is the same in every process and release."""
        return shard_of(partition_key, len(self._shards))

    def put_records(self, records: Sequence[tuple[bytes, bytes]]) -> list[PutResult]:
        """Append (partition key, data) pairs; one write and one fsync per touched shard.

        Results come in input order. If this raises, records of the shards already written
        may be stored although none was acknowledged: a producer that retries can duplicate.
        """
        self._check_open()
        if not records:
            return []
        count = len(self._shards)
        shard_ids, payloads = split_records(
            records, count, MAX_RECORD_BYTES, f"the {MAX_RECORD_BYTES}-byte limit"
        )
        arrival_ms = self._clock_ms()
        if count == 1:
            first = self._shards[0].append(payloads, arrival_ms)
            return [PutResult(0, first + i) for i in range(len(payloads))]
        positions: dict[int, list[int]] = {}
        for position, shard in enumerate(shard_ids):
            positions.setdefault(shard, []).append(position)
        firsts = {
            shard: self._shards[shard].append([payloads[p] for p in positions[shard]], arrival_ms)
            for shard in sorted(positions)
        }
        return results_in_order(shard_ids, firsts)

    def read(self, shard: int, from_sequence: int, max_records: int) -> list[StreamRecord]:
        """Up to ``max_records`` records of ``shard`` from ``from_sequence`` on, in order."""
        return records_of(self.read_batch(shard, from_sequence, max_records))

    def read_batch(self, shard: int, from_sequence: int, max_records: int) -> RecordBatch:
        """What ``read`` returns, as columns: the drain's fast path."""
        self._check_open()
        check_read_range(from_sequence, max_records)
        return self._shard(shard).read(from_sequence, max_records)

    def end_sequence(self, shard: int) -> int:
        """The sequence number the next record appended to ``shard`` will get."""
        self._check_open()
        return self._shard(shard).end_sequence

    def committed(self, group: str, shard: int) -> int:
        """The next sequence ``group`` has not consumed in ``shard`` (0 for a new group)."""
        self._check_open()
        self._shard(shard)
        with self._groups_lock:
            return self._group_offsets(group)[shard]

    def commit(self, group: str, shard: int, next_sequence: int) -> None:
        """Durably record that ``group`` consumed ``shard`` below ``next_sequence``.

        Moving backwards (to replay) is allowed; moving past the shard's end is not.
        """
        self._check_open()
        end = self._shard(shard).end_sequence
        if not 0 <= next_sequence <= end:
            raise StateError(
                f"cannot commit group {group!r} of stream {self.name!r} shard {shard} to "
                f"{next_sequence}: the shard holds sequences 0..{end - 1}, so commit at most {end}"
            )
        with self._groups_lock:
            offsets = list(self._group_offsets(group))
            offsets[shard] = next_sequence
            atomic_write(self._group_path(group), orjson.dumps({"offsets": offsets}))
            self._groups[group] = offsets

    def trim(self, now_ms: int, keep_from: dict[int, int]) -> int:
        """Apply the spec's retention, keeping every record at or after ``keep_from[shard]``."""
        self._check_open()
        spec = self._spec
        return sum(
            log.trim(now_ms, keep_from.get(log.shard, 0), spec.retention_ms,
                     spec.shard_retention_bytes)
            for log in self._shards
        )  # fmt: skip

    def describe(self) -> StreamStatus:
        """Shard sizes and consumer-group offsets, for status pages."""
        self._check_open()
        shards = tuple(
            ShardStatus(s.shard, s.end_sequence, s.size, s.start_sequence) for s in self._shards
        )
        groups: dict[str, tuple[int, ...]] = {}
        with self._groups_lock:
            for path in sorted((self.folder / "groups").glob("*.json")):
                if _is_group_file(path):
                    groups[path.stem] = tuple(self._group_offsets(path.stem))
        return StreamStatus(self.name, EMBEDDED, shards, groups)

    def close(self) -> None:
        """Close the logs and release the writer lock; later calls raise ``StateError``."""
        with self._groups_lock:
            if self._closed:
                return
            self._closed = True
        for shard in self._shards:
            shard.close()
        os.close(self._lock_fd)

    def __enter__(self) -> EmbeddedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StateError(f"stream {self.name!r} is closed; open it again to use it")

    def _shard(self, shard: int) -> ShardLog:
        if not 0 <= shard < len(self._shards):
            raise NotFoundError(
                f"stream {self.name!r} has no shard {shard}; "
                f"its shards are 0..{len(self._shards) - 1}"
            )
        return self._shards[shard]

    def _group_path(self, group: str) -> Path:
        return self.folder / "groups" / f"{check_name('consumer group', group)}.json"

    def _group_offsets(self, group: str) -> list[int]:
        cached = self._groups.get(group)
        if cached is None:
            path = self._group_path(group)
            cached = [0] * len(self._shards)
            if path.exists():
                stored = orjson.loads(path.read_bytes())["offsets"]
                cached[: len(stored)] = stored[: len(cached)]
            self._groups[group] = cached
        return cached


def _read_meta(path: Path) -> StreamSpec:
    meta: dict[str, Any] = orjson.loads(path.read_bytes())
    # Streams created before the spec lived here kept their API settings in ingest.json.
    legacy = path.with_name("ingest.json")
    if "retention_hours" not in meta and legacy.exists():
        meta = {**orjson.loads(legacy.read_bytes()), **meta}
    return StreamSpec.from_json(meta)


def _lock_folder(folder: Path, name: str) -> int:
    """Hold the stream's flock for this object's lifetime; refuse if another holder exists."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateError(
            f"stream {name!r} at {folder} is already open (pid {holder}); one process owns an "
            "embedded stream, so send records through that process or close it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _is_group_file(path: Path) -> bool:
    try:
        check_name("consumer group", path.stem)
    except InvalidRequestError:
        return False
    return True


def _segment_bytes(spec: StreamSpec) -> int:
    """Segments small enough that size retention frees space in steps of a quarter budget."""
    budget = spec.shard_retention_bytes
    return SEGMENT_BYTES if budget is None else max(64 * 1024, min(SEGMENT_BYTES, budget // 4))


def _shard_file(shard: int) -> str:
    return f"shard-{shard:04d}.log"


class EmbeddedStore:
    """The embedded streams under one folder (``SHIPYARD_HOME/streams`` by default)."""

    backend = EMBEDDED

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def create(self, name: str, spec: StreamSpec) -> EmbeddedStream:
        check_name("stream", name)
        if name in EmbeddedStream.known(self.root):
            raise StateError(f"stream {name!r} already exists")
        self.root.mkdir(parents=True, exist_ok=True)
        return EmbeddedStream.create(self.root, name, spec=spec)

    def open(self, name: str) -> EmbeddedStream:
        return EmbeddedStream.open(self.root, name)

    def names(self) -> list[str]:
        return EmbeddedStream.known(self.root)

    def delete(self, name: str) -> None:
        # Opening takes the stream's lock, so this refuses a stream another holder has open.
        EmbeddedStream.open(self.root, name).close()
        folder = self.root / name
        (folder / _META).unlink()  # from here on the stream does not exist
        fsync_dir(folder)
        shutil.rmtree(folder)

    def close(self) -> None:
        """Nothing to release: each stream holds its own files."""
