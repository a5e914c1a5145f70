"""One shard's append-only log: checksummed segment files of records, recovered on open.

A segment file is an 8-byte magic, then frames: length u32 | crc32 u32 | arrival_ms i64 |
payload (little endian; the crc covers arrival_ms and payload, so a torn or zeroed frame fails
it). The top bit of the length marks the first frame of a write unit: the frames one pwrite
and one fdatasync made durable together, at most ``UNIT_BYTES`` (or one record).

Recovery on open tells a torn write from damage. Only the last unit of the last segment can
be torn (each unit is fsynced before the next is written), so a bad frame there is cut off
and saved beside the log; a bad frame followed by a later unit's valid first frame, or with
more bytes after it than one unit can hold, or in an older segment, is damage to records that
were acknowledged: opening refuses with ``IntegrityError`` rather than cut them away.
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
_UNIT_START = 0x8000_0000
_LENGTH = 0x7FFF_FFFF
UNIT_BYTES = 8 * 1024 * 1024
SEGMENT_BYTES = 128 * 1024 * 1024
# The most a torn write can leave after the last good frame: one unit or one record.
_MAX_TORN_BYTES = UNIT_BYTES + 16 * 1024 * 1024 + _HEADER_SIZE
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


class _Segment:
    """One file of a shard's log: records ``base`` .. ``base + len(offsets) - 2``."""

    def __init__(self, path: Path, base: int, fd: int, offsets: array[int]) -> None:
        self.path = path
        self.base = base
        self.fd = fd
        # offsets[i] is where record base+i starts; offsets[-1] is the end of the last record.
        self.offsets = offsets

    @property
    def end(self) -> int:
        """The sequence after this segment's last record."""
        return self.base + len(self.offsets) - 1

    @property
    def size(self) -> int:
        return self.offsets[-1]


class ShardLog:
    """One shard's log: segment files, the in-memory index of every record, retention.

    The first segment is ``shard-NNNN.log``; each later one is ``shard-NNNN-{base}.log``,
    named by the sequence of its first record. A new segment starts once the current one
    holds ``segment_bytes``. Retention moves the shard's start (kept in ``shard-NNNN.start``)
    and deletes whole segments below it; reads below the start begin at the start.
    """

    def __init__(self, folder: Path, shard: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.shard = shard
        self.segment_bytes = segment_bytes
        self._start_path = folder / f"{_stem(shard)}.start"
        self._segments: list[_Segment] = []
        try:
            self._segments = _open_segments(folder, shard)
            self._start = _read_start(self._start_path)
        except BaseException:
            for segment in self._segments:
                os.close(segment.fd)
            raise
        self._start = max(self._start, self._segments[0].base)
        self._write_lock = threading.Lock()
        self._index = threading.Condition()
        self._readers = 0
        self._closed = False
        self._failure: str | None = None

    @property
    def path(self) -> Path:
        """The segment appends go to."""
        return self._segments[-1].path

    @property
    def end_sequence(self) -> int:
        with self._index:
            return self._segments[-1].end

    @property
    def start_sequence(self) -> int:
        """The first sequence still held; records below it went to retention."""
        with self._index:
            return self._start

    @property
    def size(self) -> int:
        """Bytes of the records still held (frames included)."""
        with self._index:
            return self._bytes_from(self._start)

    def append(self, payloads: list[bytes], arrival_ms: int) -> int:
        """Write, fsync, then publish; returns the first record's sequence number."""
        frames, sizes = _frame(payloads, arrival_ms)
        with self._write_lock:
            if self._failure is not None or self._closed:
                raise StorageError(
                    f"shard {self.shard} ({self.path}) is not writable: "
                    f"{self._failure or 'closed'}; reopen the stream"
                )
            segment = self._segments[-1]
            if segment.size >= self.segment_bytes and segment.end > segment.base:
                segment = self._roll()
            start = segment.offsets[-1]
            try:
                at = start
                for unit in frames:
                    _pwrite_all(segment.fd, unit, at)
                    _fdatasync(segment.fd)
                    at += len(unit)
            except OSError as exc:
                # After a failed write or fsync the page cache cannot be trusted (fsyncgate):
                # cut the partial batch off and stop writing until the stream is reopened.
                self._failure = str(exc)
                try:
                    os.ftruncate(segment.fd, start)
                except OSError:
                    _log.exception("could not cut a failed append off %s", segment.path)
                raise StorageError(f"could not append to {segment.path}: {exc}") from exc
            starts = array("q", itertools.accumulate(sizes, initial=start))
            with self._index:
                first = segment.end
                # Readers see records only once fsynced, so nobody consumes a record a crash
                # could still take back.
                segment.offsets.extend(starts[1:])
        return first

    def read(self, from_sequence: int, max_records: int) -> RecordBatch:
        with self._index:
            if self._closed:
                raise StateError(f"shard {self.shard} of {self.folder.name!r} is closed")
            from_sequence = max(from_sequence, self._start)
            stop = min(self._segments[-1].end, from_sequence + max_records)
            if from_sequence >= stop:
                return RecordBatch(self.shard, [], [], [])
            spans = [
                (segment, lo, hi, segment.offsets[lo - segment.base : hi - segment.base + 1])
                for segment in self._segments
                if (lo := max(from_sequence, segment.base)) < (hi := min(stop, segment.end))
            ]
            self._readers += 1
        try:
            batches = [self._read_span(*span) for span in spans]
        finally:
            with self._index:
                self._readers -= 1
                self._index.notify_all()
        if len(batches) == 1:
            return batches[0]
        return RecordBatch(
            self.shard,
            [q for b in batches for q in b.sequences],
            [a for b in batches for a in b.arrival_ms],
            [p for b in batches for p in b.payloads],
        )

    def trim(self, now_ms: int, keep_from: int, max_age_ms: int, max_bytes: int | None) -> int:
        """Drop records older than ``max_age_ms`` or beyond the newest ``max_bytes``, but none
        at or after ``keep_from``; returns how many went. Whole segments below the new start
        are deleted; the start itself is kept on disk first, so a crash never un-trims."""
        with self._write_lock:
            with self._index:
                old, end = self._start, self._segments[-1].end
            cut = self._first_younger_than(now_ms - max_age_ms, old, end)
            if max_bytes is not None:
                cut = max(cut, self._first_within_bytes(max_bytes, old, end))
            cut = min(cut, keep_from, end)
            if cut <= old:
                return 0
            atomic_write(self._start_path, str(cut).encode())
            with self._index:
                self._start = cut
                doomed = [s for s in self._segments[:-1] if s.end <= cut]
                self._segments = self._segments[len(doomed) :]
                self._index.wait_for(lambda: self._readers == 0)
            for segment in doomed:
                os.close(segment.fd)
                segment.path.unlink()
            if doomed:
                fsync_dir(self.folder)
            return cut - old

    def close(self) -> None:
        with self._write_lock, self._index:
            self._closed = True
            self._index.wait_for(lambda: self._readers == 0)
            for segment in self._segments:
                os.close(segment.fd)

    def _read_span(self, segment: _Segment, lo: int, hi: int, starts: array[int]) -> RecordBatch:
        buf = _pread_all(segment.fd, starts[-1] - starts[0], starts[0])
        if len(buf) != starts[-1] - starts[0]:
            raise StorageError(f"{segment.path} is shorter than its index; reopen the stream")
        return _parse_frames(buf, starts, self.shard, lo, segment.path)

    def _roll(self) -> _Segment:
        """Start a new segment after the current one (caller holds the write lock)."""
        base = self._segments[-1].end
        path = self.folder / f"{_stem(self.shard)}-{base:016d}.log"
        write_new_log(path)
        segment = _Segment(path, base, os.open(path, os.O_RDWR), array("q", [len(_MAGIC)]))
        with self._index:
            self._segments.append(segment)
        return segment

    def _record_start(self, sequence: int) -> tuple[_Segment, int]:
        for segment in self._segments:
            if segment.base <= sequence < segment.end:
                return segment, segment.offsets[sequence - segment.base]
        raise StorageError(f"shard {self.shard} holds no record {sequence}")

    def _arrival_ms(self, sequence: int) -> int:
        segment, at = self._record_start(sequence)
        header = os.pread(segment.fd, _HEADER_SIZE, at)
        return int(_HEADER.unpack(header)[2])

    def _first_younger_than(self, oldest_ms: int, lo: int, hi: int) -> int:
        """The first sequence in [lo, hi) that arrived at or after ``oldest_ms`` (hi if none).

        A binary search: arrival times only grow within a shard (one clock, appends in order).
        """
        while lo < hi:
            middle = (lo + hi) // 2
            if self._arrival_ms(middle) < oldest_ms:
                lo = middle + 1
            else:
                hi = middle
        return lo

    def _first_within_bytes(self, budget: int, lo: int, hi: int) -> int:
        """The first sequence in [lo, hi] from which the records up to ``hi`` fit ``budget``."""
        with self._index:
            while lo < hi:
                middle = (lo + hi) // 2
                if self._bytes_from(middle) > budget:
                    lo = middle + 1
                else:
                    hi = middle
        return lo

    def _bytes_from(self, sequence: int) -> int:
        """Bytes of the records from ``sequence`` to the end (caller holds the index lock)."""
        total = 0
        for segment in self._segments:
            if sequence < segment.end:
                first = max(sequence, segment.base) - segment.base
                total += segment.offsets[-1] - segment.offsets[first]
        return total


def write_new_log(path: Path) -> None:
    """An empty log at ``path``: just the magic, in place (with its folder) before any append."""
    atomic_write(path, _MAGIC)


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


def _frame(payloads: list[bytes], arrival_ms: int) -> tuple[list[bytes], list[int]]:
    """Frames for ``payloads`` as write units of at most ``UNIT_BYTES``, and each frame's size.

    The first frame of each unit carries the unit-start bit in its length.
    """
    seed = zlib.crc32(struct.pack("<q", arrival_ms))
    crc32, pack = zlib.crc32, _HEADER.pack
    sizes = [len(p) + _HEADER_SIZE for p in payloads]
    units: list[bytes] = []
    first = 0
    while first < len(payloads):
        stop, unit_bytes = first + 1, sizes[first]
        while stop < len(payloads) and unit_bytes + sizes[stop] <= UNIT_BYTES:
            unit_bytes += sizes[stop]
            stop += 1
        chunk = payloads[first:stop]
        parts: list[bytes] = [b""] * (2 * len(chunk))
        parts[0::2] = [pack(len(p), crc32(p, seed), arrival_ms) for p in chunk]
        parts[1::2] = chunk
        parts[0] = pack(len(chunk[0]) | _UNIT_START, crc32(chunk[0], seed), arrival_ms)
        units.append(b"".join(parts))
        first = stop
    return units, sizes


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
        end = at + _HEADER_SIZE + (length & _LENGTH)
        if crc32(view[at + 8 : end]) != crc:
            raise IntegrityError(
                f"record {first_sequence + len(payloads)} of {path} fails its crc32; the log "
                "was changed on disk after it was written"
            )
        arrivals.append(arrival_ms)
        payloads.append(buf[at + _HEADER_SIZE : end])
    sequences = list(range(first_sequence, first_sequence + len(payloads)))
    return RecordBatch(shard, sequences, arrivals, payloads)


def _open_segments(folder: Path, shard: int) -> list[_Segment]:
    """Every segment of ``shard`` in order, each recovered; only the last may have a torn tail."""
    stem = _stem(shard)
    paths = {0: folder / f"{stem}.log"} if (folder / f"{stem}.log").exists() else {}
    for path in folder.glob(f"{stem}-*.log"):
        paths[int(path.stem.rsplit("-", 1)[1])] = path
    if not paths:
        raise StorageError(
            f"stream log {folder / f'{stem}.log'} is missing; the stream folder is damaged"
        )
    segments: list[_Segment] = []
    try:
        for position, base in enumerate(sorted(paths)):
            path = paths[base]
            fd = os.open(path, os.O_RDWR)
            try:
                offsets = _recover(fd, path, last=position == len(paths) - 1)
            except BaseException:
                os.close(fd)
                raise
            segment = _Segment(path, base, fd, offsets)
            if segments and segments[-1].end != base:
                segments.append(segment)  # closed with the others below
                raise IntegrityError(
                    f"{path} starts at record {base} but the segment before it ends at "
                    f"{segments[-2].end}; records are missing from shard {shard}"
                )
            segments.append(segment)
    except BaseException:
        for segment in segments:
            os.close(segment.fd)
        raise
    return segments


def _read_start(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


def _stem(shard: int) -> str:
    return f"shard-{shard:04d}"


def _recover(fd: int, path: Path, *, last: bool = True) -> array[int]:
    """Index every intact record; cut away a torn tail (never acknowledged) after saving it.

    Refuses (``IntegrityError``) when the bad bytes cannot be a torn write: see the module doc.
    """
    size = os.fstat(fd).st_size
    if size < len(_MAGIC) or os.pread(fd, len(_MAGIC), 0) != _MAGIC:
        raise StorageError(f"{path} is not a Shipyard stream log (bad or missing header)")
    offsets = array("q")
    append, unpack, crc32 = offsets.append, _HEADER.unpack_from, zlib.crc32
    at = len(_MAGIC)
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
        while at + _HEADER_SIZE <= size:
            length, crc, _ = unpack(view, at)
            end = at + _HEADER_SIZE + (length & _LENGTH)
            if end > size or crc32(view[at + 8 : end]) != crc:
                break
            append(at)
            at = end
        damage = None
        if at < size:
            if not last:
                damage = "a segment that later segments follow"
            elif size - at > _MAX_TORN_BYTES:
                damage = f"{size - at} bytes after it, more than one write can leave"
            elif _later_unit(view, at, size):
                damage = "a later write's records after it"
        torn = bytes(view[at:size]) if damage is None else b""
    if damage is not None:
        raise IntegrityError(
            f"{path} is damaged at byte {at}, after record {len(offsets) - 1}: it has {damage}, "
            "so these are acknowledged records, not a torn write. Restore the file from a "
            "backup, or move the damaged bytes aside by hand to give those records up"
        )
    offsets.append(at)
    if torn:
        # A crash mid-append leaves a partial unit; its put_records never returned. Keep the
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


def _later_unit(view: memoryview, bad_at: int, size: int) -> bool:
    """Whether a valid first frame of a later write unit follows the bad frame at ``bad_at``.

    Walks the frame chain from the bad frame using its length field; a length that leads
    nowhere ends the walk, and the size bound in ``_recover`` covers that case.
    """
    unpack, crc32 = _HEADER.unpack_from, zlib.crc32
    length = unpack(view, bad_at)[0] & _LENGTH if bad_at + _HEADER_SIZE <= size else size
    at = bad_at + _HEADER_SIZE + length
    while at + _HEADER_SIZE <= size:
        length, crc, _ = unpack(view, at)
        end = at + _HEADER_SIZE + (length & _LENGTH)
        if end > size or crc32(view[at + 8 : end]) != crc:
            return False
        if length & _UNIT_START:
            return True
        at = end
    return False


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
