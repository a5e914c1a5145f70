"""One shard's append-only log: a checksummed file of records, recovered on open.

A log file is an 8-byte magic, then frames: length u32 | crc32 u32 | arrival_ms i64 | payload
(little endian; the crc covers arrival_ms and payload, so a torn or zeroed frame fails it).
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.errors import IntegrityError, StateError, StorageError
from shipyard.core.types import StreamRecord

# Logged under the public module's name, so logging set up for the stream still sees these.
_log = logging.getLogger("shipyard.ingest.stream")
_MAGIC = b"SHPYLOG\x01"
_HEADER = struct.Struct("<IIq")
_HEADER_SIZE = _HEADER.size
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


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


class ShardLog:
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


def write_new_log(path: Path) -> None:
    """An empty log at ``path``: just the magic, fsynced before anyone may append."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _pwrite_all(fd, _MAGIC, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the folder: readers see the old or the new bytes."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make the files created or renamed in ``folder`` survive a crash, not only their bytes."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        saved = path.with_name(f"{path.name}.torn-{time.time_ns() // 1_000_000}")
        atomic_write(saved, torn)
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
