"""Stream generated chunks into Parquet files or JSON lines, events and labels in one pass."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from shipyard.core.errors import DataError
from shipyard.scenarios._fraud_domains import LABEL_SCHEMA

_REPEATED_STRINGS = frozenset(
    {"card_id", "currency", "merchant_id", "merchant_category", "country", "channel"}
)


class TableSink(Protocol):
    """Somewhere Arrow tables of one schema can be appended, then closed."""

    def write(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


class ParquetSink:
    """One zstd-compressed Parquet file, one row group per written chunk."""

    def __init__(self, path: str | Path, schema: pa.Schema) -> None:
        # Unique columns (ids, timestamps) only waste time in a dictionary; repeated ones shrink.
        repeated = [f.name for f in schema if f.name in _REPEATED_STRINGS]
        self._writer = pq.ParquetWriter(
            str(path), schema, compression="zstd", use_dictionary=repeated
        )

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


class JsonLinesSink:
    """JSON lines on a binary stream: one object per row, nulls as null."""

    def __init__(self, stream: BinaryIO, *, owns_stream: bool = False) -> None:
        self._stream = stream
        self._owns_stream = owns_stream

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        frame = pl.from_arrow(table)
        if not isinstance(frame, pl.DataFrame):  # pragma: no cover - tables always give frames
            raise DataError(f"expected a table to become a DataFrame, got {type(frame).__name__}")
        frame.write_ndjson(self._stream)

    def close(self) -> None:
        if self._owns_stream:
            self._stream.close()
        else:
            self._stream.flush()


def open_file_sink(path: str | Path, schema: pa.Schema) -> ParquetSink | JsonLinesSink:
    """Parquet when `path` ends in .parquet, JSON lines otherwise."""
    if str(path).lower().endswith(".parquet"):
        return ParquetSink(path, schema)
    return JsonLinesSink(open(path, "wb"), owns_stream=True)  # closed by the sink


class Chunk(Protocol):
    """The parts of a generated chunk the writers read."""

    @property
    def events(self) -> pa.Table: ...

    @property
    def labels(self) -> pa.Table: ...


ChunkT = TypeVar("ChunkT", bound=Chunk)


def _prefetched(chunks: Iterator[ChunkT]) -> Generator[ChunkT, None, None]:
    """Yield chunks while the next one is generated on a worker thread.

    numpy, Arrow and polars release the GIL, so generating and writing overlap on two cores.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-generate") as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


def drain(
    chunks: Iterable[Chunk],
    open_events: Callable[[], TableSink] | None,
    labels: str | Path | None,
    on_chunk: Callable[[int], None] | None,
) -> None:
    """Write every chunk's events and labels, closing both sinks whatever happens."""
    with ExitStack() as stack:
        ready = stack.enter_context(closing(_prefetched(iter(chunks))))
        events = None if open_events is None else stack.enter_context(closing(open_events()))
        label_sink = None
        if labels is not None:
            label_sink = stack.enter_context(closing(open_file_sink(labels, LABEL_SCHEMA)))
        for chunk in ready:
            if events is not None:
                events.write(chunk.events)
            if label_sink is not None:
                label_sink.write(chunk.labels)
            if on_chunk is not None:
                on_chunk(chunk.events.num_rows)
