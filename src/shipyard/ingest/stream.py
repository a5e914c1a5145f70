"""The embedded durable stream: a sharded, checksummed, append-only log in a local folder.

Layout of a stream called ``fraud`` under ``root``::

    root/fraud/stream.json          name and shard count; the stream exists once this exists
    root/fraud/shard-0000.log       8-byte magic, then frames: length u32 | crc32 u32 |
                                    arrival_ms i64 | payload (little endian; the crc covers
                                    arrival_ms and payload, so a torn or zeroed frame fails it)
    root/fraud/groups/landing.json  committed offsets of consumer group ``landing``, per shard
    root/fraud/.lock                flock held by the one process that owns the stream

One process owns a stream (the server); other processes reach it through that process.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import mmap
import os
import re
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from shipyard.core.config import EMBEDDED, Settings
from shipyard.core.errors import (
    ConfigError,
    IntegrityError,
    InvalidRequestError,
    NotFoundError,
    StateError,
    StorageError,
)
from shipyard.core.interfaces import Stream
from shipyard.core.types import PutResult, StreamRecord

MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_SHARDS = 1024

_log = logging.getLogger(__name__)
_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
_MAGIC = b"SHPYLOG\x01"
_HEADER = struct.Struct("<IIq")
_HEADER_SIZE = _HEADER.size
_META = "stream.json"
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True)
class ShardStatus:
    """One shard's size: the next sequence it will write and the bytes of its log."""

    shard: int
    end_sequence: int
    bytes: int


@dataclass(frozen=True)
class StreamStatus:
    """A stream's state for status pages: shards and each consumer group's offsets."""

    name: str
    backend: str
    shards: tuple[ShardStatus, ...]
    groups: dict[str, tuple[int, ...]]

    @property
    def records(self) -> int:
        return sum(s.end_sequence for s in self.shards)


@dataclass(frozen=True)
class RecordBatch:
    """Consecutive records of one shard as columns: no Python object per record to build."""

    shard: int
    sequences: list[int]
    arrival_ms: list[int]
    payloads: list[bytes]

    def __len__(self) -> int:
        return len(self.sequences)

    @classmethod
    def of(cls, shard: int, records: Sequence[StreamRecord]) -> RecordBatch:
        return cls(
            shard,
            [r.sequence for r in records],
            [r.arrival_ms for r in records],
            [r.data for r in records],
        )


class StreamBackend(Stream, Protocol):
    """What every ingest stream backend offers on top of ``Stream``: bulk reads and status."""

    def read_batch(self, shard: int, from_sequence: int, max_records: int) -> RecordBatch:
        """What ``read`` returns, as columns."""
        ...

    def end_sequence(self, shard: int) -> int: ...

    def describe(self) -> StreamStatus: ...


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
        self, folder: Path, name: str, shard_count: int, lock_fd: int, clock_ms: Callable[[], int]
    ) -> None:
        # Use create() or open(): they validate the name and hold the writer lock for us.
        self.name = name
        self.folder = folder
        self._lock_fd = lock_fd
        self._clock_ms = clock_ms
        self._closed = False
        self._shards: list[_ShardLog] = []
        try:
            for shard in range(shard_count):
                self._shards.append(_ShardLog(folder / _shard_file(shard), shard))
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
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> EmbeddedStream:
        """Create the stream (or open it if it exists with the same shard count)."""
        check_name("stream", name)
        if not 1 <= shards <= MAX_SHARDS:
            raise InvalidRequestError(f"shards must be 1..{MAX_SHARDS}, got {shards}")
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock_folder(folder, name)
        try:
            meta_path = folder / _META
            if meta_path.exists():
                existing = _read_meta(meta_path)
                if existing != shards:
                    raise StateError(
                        f"stream {name!r} already exists with {existing} shards, not {shards}; "
                        "open it with its shard count or create another stream"
                    )
            else:
                for shard in range(shards):
                    _write_new_log(folder / _shard_file(shard))
                (folder / "groups").mkdir(exist_ok=True)
                meta = {"format": 1, "name": name, "shards": shards}
                _atomic_write(meta_path, orjson.dumps(meta))
                _fsync_dir(folder.parent)
            return cls(folder, name, shards, lock_fd, clock_ms)
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

    def shard_for(self, partition_key: bytes) -> int:
        """The shard a key goes to: crc32, so it is the same in every process and release."""
        return zlib.crc32(partition_key) % len(self._shards)

    def put_records(self, records: Sequence[tuple[bytes, bytes]]) -> list[PutResult]:
        """Append (partition key, data) pairs; one write and one fsync per touched shard.

        Results come in input order. If this raises, records of the shards already written
        may be stored although none was acknowledged: a producer that retries can duplicate.
        """
        self._check_open()
        if not records:
            return []
        count = len(self._shards)
        try:
            shard_ids = [zlib.crc32(key) % count for key, _ in records]
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(
                f"put_records takes (partition key, data) pairs of bytes: {exc}"
            ) from None
        payloads = [data for _, data in records]
        if not set(map(type, payloads)) <= {bytes}:
            raise InvalidRequestError("record data must be bytes; encode text before putting it")
        longest = max(map(len, payloads))
        if longest > MAX_RECORD_BYTES:
            raise InvalidRequestError(
                f"a record of {longest} bytes exceeds the {MAX_RECORD_BYTES}-byte limit"
            )
        arrival_ms = self._clock_ms()
        if count == 1:
            first = self._shards[0].append(payloads, arrival_ms)
            return [PutResult(0, first + i) for i in range(len(payloads))]
        positions: dict[int, list[int]] = {}
        for position, shard in enumerate(shard_ids):
            positions.setdefault(shard, []).append(position)
        next_sequence = {
            shard: self._shards[shard].append([payloads[p] for p in positions[shard]], arrival_ms)
            for shard in sorted(positions)
        }
        results = []
        for shard in shard_ids:
            results.append(PutResult(shard, next_sequence[shard]))
            next_sequence[shard] += 1
        return results

    def read(self, shard: int, from_sequence: int, max_records: int) -> list[StreamRecord]:
        """Up to ``max_records`` records of ``shard`` from ``from_sequence`` on, in order."""
        batch = self.read_batch(shard, from_sequence, max_records)
        return [
            StreamRecord(shard, sequence, data, arrival_ms)
            for sequence, data, arrival_ms in zip(
                batch.sequences, batch.payloads, batch.arrival_ms, strict=True
            )
        ]

    def read_batch(self, shard: int, from_sequence: int, max_records: int) -> RecordBatch:
        """What ``read`` returns, as columns: the drain's fast path."""
        self._check_open()
        if from_sequence < 0 or max_records < 0:
            raise InvalidRequestError(
                f"from_sequence and max_records must be >= 0, got {from_sequence}, {max_records}"
            )
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
            _atomic_write(self._group_path(group), orjson.dumps({"offsets": offsets}))
            self._groups[group] = offsets

    def describe(self) -> StreamStatus:
        """Shard sizes and consumer-group offsets, for status pages."""
        self._check_open()
        shards = tuple(ShardStatus(s.shard, s.end_sequence, s.size) for s in self._shards)
        groups: dict[str, tuple[int, ...]] = {}
        with self._groups_lock:
            for path in sorted((self.folder / "groups").glob("*.json")):
                if _NAME.match(path.stem):
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

    def _shard(self, shard: int) -> _ShardLog:
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


def open_stream(
    settings: Settings, name: str, shards: int = 2, create: bool = True
) -> StreamBackend:
    """The stream called ``name`` on the backend ``settings.stream_url`` selects."""
    if settings.stream_url == EMBEDDED:
        settings.ensure_home()
        if create:
            return EmbeddedStream.create(settings.stream_path, name, shards)
        return EmbeddedStream.open(settings.stream_path, name)
    raise ConfigError(
        f"SHIPYARD_STREAM_URL={settings.stream_url!r} is not a stream backend Shipyard has; "
        f"use {EMBEDDED!r} (NATS JetStream and Redis Streams backends are planned)"
    )


def check_name(kind: str, name: str) -> str:
    """Refuse names that are not 1-128 of [a-zA-Z0-9_.-] or that are path tricks."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise InvalidRequestError(
            f"{kind} name {name!r} is not usable: use 1-128 letters, digits, '_', '.' or '-'"
        )
    return name


class _ShardLog:
    """One shard's log file and the in-memory index of where each record starts."""

    def __init__(self, path: Path, shard: int) -> None:
        self.path = path
        self.shard = shard
        try:
            self._fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise StorageError(
                f"stream log {path} is missing; the stream folder is damaged"
            ) from None
        try:
            # offsets[i] is where record i starts; offsets[-1] is the end of the last record.
            self._offsets = _recover(self._fd, path)
        except BaseException:
            os.close(self._fd)
            raise
        self._write_lock = threading.Lock()
        self._index = threading.Condition()
        self._readers = 0
        self._closed = False
        self._failure: str | None = None

    @property
    def end_sequence(self) -> int:
        with self._index:
            return len(self._offsets) - 1

    @property
    def size(self) -> int:
        with self._index:
            return self._offsets[-1]

    def append(self, payloads: list[bytes], arrival_ms: int) -> int:
        """Write, fsync, then publish; returns the first record's sequence number."""
        frames, sizes = _frame(payloads, arrival_ms)
        with self._write_lock:
            if self._failure is not None or self._closed:
                raise StorageError(
                    f"shard {self.shard} ({self.path}) is not writable: "
                    f"{self._failure or 'closed'}; reopen the stream"
                )
            start = self._offsets[-1]
            try:
                _pwrite_all(self._fd, frames, start)
                _fdatasync(self._fd)
            except OSError as exc:
                # After a failed write or fsync the page cache cannot be trusted (fsyncgate):
                # cut the partial batch off and stop writing until the stream is reopened.
                self._failure = str(exc)
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    _log.exception("could not cut a failed append off %s", self.path)
                raise StorageError(f"could not append to {self.path}: {exc}") from exc
            starts = array("q", itertools.accumulate(sizes, initial=start))
            with self._index:
                first = len(self._offsets) - 1
                # Readers see records only once fsynced, so nobody consumes a record a crash
                # could still take back.
                self._offsets.extend(starts[1:])
        return first

    def read(self, from_sequence: int, max_records: int) -> RecordBatch:
        with self._index:
            if self._closed:
                raise StateError(f"shard {self.shard} of {self.path.parent.name!r} is closed")
            end = len(self._offsets) - 1
            stop = min(end, from_sequence + max_records)
            if from_sequence >= stop:
                return RecordBatch(self.shard, [], [], [])
            starts = self._offsets[from_sequence : stop + 1]
            self._readers += 1
        try:
            buf = _pread_all(self._fd, starts[-1] - starts[0], starts[0])
        finally:
            with self._index:
                self._readers -= 1
                self._index.notify_all()
        if len(buf) != starts[-1] - starts[0]:
            raise StorageError(f"{self.path} is shorter than its index; reopen the stream")
        return _parse_frames(buf, starts, self.shard, from_sequence, self.path)

    def close(self) -> None:
        with self._write_lock, self._index:
            self._closed = True
            self._index.wait_for(lambda: self._readers == 0)
            os.close(self._fd)


def _frame(payloads: list[bytes], arrival_ms: int) -> tuple[bytes, list[int]]:
    """Frames for ``payloads`` as one buffer, and each frame's size."""
    seed = zlib.crc32(struct.pack("<q", arrival_ms))
    crc32, pack = zlib.crc32, _HEADER.pack
    lengths = [len(p) for p in payloads]
    parts: list[bytes] = [b""] * (2 * len(payloads))
    parts[0::2] = [
        pack(n, crc32(p, seed), arrival_ms) for n, p in zip(lengths, payloads, strict=True)
    ]
    parts[1::2] = payloads
    return b"".join(parts), [n + _HEADER_SIZE for n in lengths]


def _parse_frames(
    buf: bytes, starts: array[int], shard: int, first_sequence: int, path: Path
) -> RecordBatch:
    view = memoryview(buf)
    base = starts[0]
    unpack, crc32 = _HEADER.unpack_from, zlib.crc32
    arrivals: list[int] = []
    payloads: list[bytes] = []
    for start in itertools.islice(starts, len(starts) - 1):
        at = start - base
        length, crc, arrival_ms = unpack(buf, at)
        end = at + _HEADER_SIZE + length
        if crc32(view[at + 8 : end]) != crc:
            raise IntegrityError(
                f"record {first_sequence + len(payloads)} of {path} fails its crc32; the log "
                "was changed on disk after it was written"
            )
        arrivals.append(arrival_ms)
        payloads.append(buf[at + _HEADER_SIZE : end])
    sequences = list(range(first_sequence, first_sequence + len(payloads)))
    return RecordBatch(shard, sequences, arrivals, payloads)


def _recover(fd: int, path: Path) -> array[int]:
    """Index every intact record; cut away a torn tail (never acknowledged) after saving it."""
    size = os.fstat(fd).st_size
    if size < len(_MAGIC) or os.pread(fd, len(_MAGIC), 0) != _MAGIC:
        raise StorageError(f"{path} is not a Shipyard stream log (bad or missing header)")
    offsets = array("q")
    append, unpack, crc32 = offsets.append, _HEADER.unpack_from, zlib.crc32
    at = len(_MAGIC)
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
        while at + _HEADER_SIZE <= size:
            length, crc, _ = unpack(view, at)
            end = at + _HEADER_SIZE + length
            if end > size or crc32(view[at + 8 : end]) != crc:
                break
            append(at)
            at = end
        torn = bytes(view[at:size])
    offsets.append(at)
    if torn:
        # A crash mid-append leaves a partial batch; its put_records never returned. Keep the
        # bytes beside the log in case this was disk corruption rather than a torn write.
        saved = path.with_name(f"{path.name}.torn-{wall_clock_ms()}")
        _atomic_write(saved, torn)
        os.ftruncate(fd, at)
        os.fsync(fd)
        _log.warning(
            "cut a torn tail of %d bytes after record %d off %s (saved as %s)",
            len(torn),
            len(offsets) - 2,
            path,
            saved.name,
        )
    return offsets


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    # One pread returns at most ~2 GiB on Linux, and less at end of file.
    chunks = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _write_new_log(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _pwrite_all(fd, _MAGIC, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the folder: readers see the old or the new bytes."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_meta(path: Path) -> int:
    meta: dict[str, Any] = orjson.loads(path.read_bytes())
    return int(meta["shards"])


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


def _shard_file(shard: int) -> str:
    return f"shard-{shard:04d}.log"
