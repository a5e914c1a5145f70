"""Vectorised builders of fixed-width Arrow strings: ids, digit codes and ISO timestamps."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

IntArray = npt.NDArray[np.int64]
ByteMatrix = npt.NDArray[np.uint8]

MS_PER_DAY = 86_400_000
_MASK64 = (1 << 64) - 1


def _digit_table(n_values: int, n_digits: int) -> ByteMatrix:
    """Row v holds the zero-padded decimal digits of v."""
    values = np.arange(n_values, dtype=np.int64)[:, None]
    powers = 10 ** np.arange(n_digits - 1, -1, -1, dtype=np.int64)
    return (48 + values // powers % 10).astype(np.uint8)


def _fixed(matrix: ByteMatrix) -> npt.NDArray[np.bytes_]:
    """View each row of a byte matrix as one fixed-width byte string."""
    return np.ascontiguousarray(matrix).view(f"S{matrix.shape[1]}").ravel()


_DIGITS_2 = _digit_table(100, 2)
_HEX_PAIRS = _fixed(np.array([[ord(c) for c in f"{b:02x}"] for b in range(256)], dtype=np.uint8))
_MILLIS = _fixed(_digit_table(1000, 3))


def _clock_table() -> npt.NDArray[np.bytes_]:
    """`HH:MM:SS` for every second of the day."""
    second = np.arange(86_400)
    out = np.empty((86_400, 8), dtype=np.uint8)
    out[:, 0:2] = _DIGITS_2[second // 3600]
    out[:, 3:5] = _DIGITS_2[second // 60 % 60]
    out[:, 6:8] = _DIGITS_2[second % 60]
    out[:, [2, 5]] = ord(":")
    return _fixed(out)


_CLOCK = _clock_table()
_ISO_RECORD = np.dtype(
    [("date", "S10"), ("t", "S1"), ("clock", "S8"), ("dot", "S1"), ("ms", "S3"), ("z", "S1")]
)
_ID_RECORD = np.dtype([("prefix", "S4"), ("hex", "S16")])


def strings_from_matrix(matrix: ByteMatrix) -> pa.StringArray:
    """Wrap an (n, width) ASCII byte matrix as an Arrow string array without copying rows."""
    n_rows, width = matrix.shape
    offsets = np.arange(0, (n_rows + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix)
    return pa.StringArray.from_buffers(n_rows, pa.py_buffer(offsets), pa.py_buffer(data))


def prefixed_matrix(prefix: str, n_rows: int, n_body: int) -> ByteMatrix:
    """An (n, len(prefix) + n_body) byte matrix whose rows start with `prefix`."""
    matrix = np.empty((n_rows, len(prefix) + n_body), dtype=np.uint8)
    matrix[:, : len(prefix)] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    return matrix


def digit_codes(prefix: str, numbers: IntArray, n_digits: int) -> pa.StringArray:
    """Format non-negative integers as `prefix` + zero-padded decimal digits."""
    matrix = prefixed_matrix(prefix, len(numbers), n_digits)
    rest = numbers.astype(np.int64)
    for position in range(len(prefix) + n_digits - 1, len(prefix) - 1, -1):
        matrix[:, position] = 48 + rest % 10
        rest = rest // 10
    return strings_from_matrix(matrix)


def _splitmix64(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # A bijection on 64-bit integers, so distinct row indices always give distinct ids.
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def seed_salt(seed: int) -> int:
    """A 64-bit value that scrambles row indices differently for each seed."""
    z = (seed * 0xD1B54A32D192ED03 + 0x8CB92BA72F3D8DD7) & _MASK64
    z = ((z ^ (z >> 29)) * 0xBF58476D1CE4E5B9) & _MASK64
    return z ^ (z >> 32)


def event_ids(indices: IntArray, salt: int) -> pa.StringArray:
    """`evt-` + 16 hex digits of a 64-bit mix of each global row index."""
    mixed = _splitmix64(indices.astype(np.uint64) ^ np.uint64(salt))
    big_endian = mixed.astype(">u8").view(np.uint8).reshape(len(indices), 8)
    records = np.empty(len(indices), dtype=_ID_RECORD)
    records["prefix"] = b"evt-"
    records["hex"] = _HEX_PAIRS[big_endian].view("S16").ravel()
    return strings_from_matrix(records.view(np.uint8).reshape(len(indices), 20))


def _civil_dates(days: IntArray) -> ByteMatrix:
    """`YYYY-MM-DD` bytes for each day since 1970-01-01 (Hinnant's days-to-civil)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    out = np.empty((len(days), 10), dtype=np.uint8)
    out[:, 0:2] = _DIGITS_2[year // 100]
    out[:, 2:4] = _DIGITS_2[year % 100]
    out[:, 4] = ord("-")
    out[:, 5:7] = _DIGITS_2[month]
    out[:, 7] = ord("-")
    out[:, 8:10] = _DIGITS_2[day]
    return out


def iso_matrix(epoch_ms: IntArray) -> ByteMatrix:
    """`2026-11-01T00:00:00.123Z` bytes (24 wide) for each epoch-millisecond value."""
    days = epoch_ms // MS_PER_DAY
    first_day, last_day = (int(days.min()), int(days.max())) if len(days) else (0, 0)
    # Rows cover few distinct days, so format each day once and gather.
    day_table = _fixed(_civil_dates(np.arange(first_day, last_day + 1, dtype=np.int64)))
    ms_of_day = epoch_ms - days * MS_PER_DAY
    records = np.empty(len(epoch_ms), dtype=_ISO_RECORD)
    records["date"] = day_table[days - first_day]
    records["t"] = b"T"
    records["clock"] = _CLOCK[ms_of_day // 1000]
    records["dot"] = b"."
    records["ms"] = _MILLIS[ms_of_day % 1000]
    records["z"] = b"Z"
    return records.view(np.uint8).reshape(len(epoch_ms), 24)


def iso_times(epoch_ms: IntArray) -> pa.StringArray:
    """ISO 8601 UTC strings with milliseconds, e.g. `2026-11-01T00:00:00.123Z`."""
    return strings_from_matrix(iso_matrix(epoch_ms))


def impossible_times(epoch_ms: IntArray) -> pa.StringArray:
    """Timestamps with a space separator and an impossible clock, e.g. `2026-11-01 25:61:00`."""
    matrix = iso_matrix(epoch_ms)[:, :19]
    matrix[:, 10] = ord(" ")
    matrix[:, 11:13] = _DIGITS_2[25]
    matrix[:, 14:16] = _DIGITS_2[61]
    return strings_from_matrix(matrix)
