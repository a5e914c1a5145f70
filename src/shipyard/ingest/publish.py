"""Publish a table of events onto a stream as JSON records, keyed by a partition-key column."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from shipyard.core.interfaces import Stream


@dataclass(frozen=True)
class PublishResult:
    records: int
    bytes: int
    batches: int


def event_lines(events: pa.Table | pl.DataFrame) -> list[bytes]:
    """One compact JSON object per event, exactly as a producer would send it."""
    frame = events if isinstance(events, pl.DataFrame) else pl.from_arrow(events)
    assert isinstance(frame, pl.DataFrame)
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    return buffer.getvalue().splitlines()


def publish_events(
    stream: Stream,
    events: pa.Table | pl.DataFrame,
    *,
    partition_key: str = "card_id",
    fallback_key: str = "event_id",
    batch_records: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> PublishResult:
    """Append every event; each batch is durable before the next one is sent."""
    frame = events if isinstance(events, pl.DataFrame) else pl.from_arrow(events)
    assert isinstance(frame, pl.DataFrame)
    keys = (
        frame.select(pl.coalesce(pl.col(partition_key), pl.col(fallback_key), pl.lit("")))
        .to_series()
        .to_list()
    )
    total_bytes = 0
    batches = 0
    for start in range(0, len(frame), batch_records):
        chunk = frame.slice(start, batch_records)
        lines = event_lines(chunk)
        chunk_keys = keys[start : start + len(lines)]
        stream.put_records([(k.encode(), line) for k, line in zip(chunk_keys, lines, strict=True)])
        total_bytes += sum(len(line) for line in lines)
        batches += 1
        if progress is not None:
            progress(len(lines))
    return PublishResult(records=len(frame), bytes=total_bytes, batches=batches)
