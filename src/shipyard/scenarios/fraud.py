"""The fraud scenario: deterministic card-payment events, delayed labels, bad rows and drift.

The event schema is documented in docs/fraud-events.md. Example::

    scenario = FraudScenario(seed=7, bad_row_rate=0.01, drift={"amount": 1.5})
    batch = scenario.generate(100_000)          # batch.events, batch.labels, batch.corrupted
    write_parquet(scenario, 10_000_000, "events.parquet", labels="labels.parquet")
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

import pyarrow as pa

from shipyard.core.errors import ConfigError
from shipyard.scenarios._fraud_arrow import block_tables
from shipyard.scenarios._fraud_block import BLOCK_SIZE, BlockSettings, generate_block
from shipyard.scenarios._fraud_domains import (
    BAD_ROW_KINDS,
    CATEGORICAL_DRIFT_COLUMNS,
    CHANNELS,
    CORRUPTED_SCHEMA,
    COUNTRIES,
    CURRENCIES,
    EVENT_FIELDS,
    EVENT_SCHEMA,
    LABEL_SCHEMA,
    MERCHANT_CATEGORIES,
    NUMERIC_DRIFT_COLUMNS,
)
from shipyard.scenarios._fraud_io import JsonLinesSink, ParquetSink, drain
from shipyard.scenarios._fraud_pools import build_pools
from shipyard.scenarios._fraud_tables import build_tables
from shipyard.scenarios._fraud_text import seed_salt

__all__ = [
    "BAD_ROW_KINDS",
    "BLOCK_SIZE",
    "CATEGORICAL_DRIFT_COLUMNS",
    "CHANNELS",
    "CORRUPTED_SCHEMA",
    "COUNTRIES",
    "CURRENCIES",
    "DEFAULT_CHUNK_SIZE",
    "EVENT_FIELDS",
    "EVENT_SCHEMA",
    "LABEL_SCHEMA",
    "MERCHANT_CATEGORIES",
    "NUMERIC_DRIFT_COLUMNS",
    "FraudScenario",
    "GeneratedEvents",
    "ProgressCallback",
    "write_jsonl",
    "write_labels",
    "write_parquet",
]

DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_CHUNK_SIZE = 4 * BLOCK_SIZE
MAX_EVENTS = 10**11  # keeps epoch-millisecond arithmetic inside int64
_MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class GeneratedEvents:
    """One batch: events (the doc's schema), their delayed labels, and which rows are bad.

    `corrupted` has one row per bad event: `row` (position in this batch), `event_id`,
    `kind` (one of BAD_ROW_KINDS) and `column` (the column the corruption broke).
    """

    events: pa.Table
    labels: pa.Table
    corrupted: pa.Table


def _epoch_ms(name: str, moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError(
            f"{name} must be timezone-aware, got naive {moment.isoformat()}; "
            "pass e.g. datetime(..., tzinfo=UTC)"
        )
    return math.floor(moment.timestamp() * 1000)


def _check_drift(drift: Mapping[str, float]) -> None:
    driftable = NUMERIC_DRIFT_COLUMNS + CATEGORICAL_DRIFT_COLUMNS
    for column, factor in drift.items():
        if column not in driftable:
            raise ConfigError(
                f"cannot drift column {column!r}; driftable columns: {', '.join(driftable)}"
            )
        if not isinstance(factor, int | float) or not math.isfinite(factor) or factor <= 0:
            raise ConfigError(f"drift factor for {column!r} must be a number > 0, got {factor!r}")


@dataclass(frozen=True)
class FraudScenario:
    """Settings of a reproducible stream of card payments; `generate` draws rows from it.

    Rows are spaced evenly in time from `start`, `events_per_day` per day (the default,
    5 million a day, puts 1 million events in about 4.8 hours). About 0.5 % are fraud; each
    label arrives `label_delay_days` (plus up to 12 hours) after its event. About
    `bad_row_rate` of the rows carry exactly one corruption of the kinds in BAD_ROW_KINDS.

    `drift` maps a column to a factor > 0, applied to rows whose event_time is at or after
    `drift_start` (every row when it is None):

    - numeric column: values are multiplied by the factor (integers rounded, scores capped
      at 1). Labels are decided before the shift, so a model trained on earlier rows sees
      a changed input but an unchanged truth.
    - categorical column (merchant_category, country, currency, channel): the weight of
      every category in the second half of the column's documented domain is multiplied by
      the factor and the distribution renormalised, so factor 2 doubles their odds. Country
      and currency are tilted given the card's home country, channel given the merchant
      category; the related fields (is_foreign, currency, ...) follow and labels are
      decided on the drifted rows.
    """

    seed: int = 0
    bad_row_rate: float = 0.0
    drift: Mapping[str, float] = field(default_factory=dict)
    drift_start: datetime | None = None
    start: datetime = DEFAULT_START
    events_per_day: int = 5_000_000
    label_delay_days: float = 3.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**63
        ):
            raise ConfigError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        rate = self.bad_row_rate
        if not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise ConfigError(f"bad_row_rate must be between 0 and 1, got {rate!r}")
        _check_drift(self.drift)
        # A private copy behind a read-only view keeps the frozen scenario truly immutable.
        object.__setattr__(self, "drift", MappingProxyType(dict(self.drift)))
        _epoch_ms("start", self.start)
        if self.drift_start is not None:
            _epoch_ms("drift_start", self.drift_start)
        if not isinstance(self.events_per_day, int) or self.events_per_day < 1:
            raise ConfigError(
                f"events_per_day must be an integer >= 1, got {self.events_per_day!r}"
            )
        delay = self.label_delay_days
        if not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
            raise ConfigError(f"label_delay_days must be a number >= 0, got {delay!r}")

    @functools.cached_property
    def _settings(self) -> BlockSettings:
        numeric = tuple((c, float(f)) for c, f in self.drift.items() if c in NUMERIC_DRIFT_COLUMNS)
        return BlockSettings(
            seed=self.seed,
            start_ms=_epoch_ms("start", self.start),
            events_per_day=self.events_per_day,
            label_delay_ms=round(self.label_delay_days * _MS_PER_DAY),
            bad_row_rate=float(self.bad_row_rate),
            drift_start_ms=None
            if self.drift_start is None
            else _epoch_ms("drift_start", self.drift_start),
            numeric_drift=numeric,
            has_drift=bool(self.drift),
            tables=build_tables(self.seed, tuple(sorted(self.drift.items()))),
        )

    def generate(self, n_events: int, offset: int = 0) -> GeneratedEvents:
        """Rows [offset, offset + n_events) of this scenario's endless, fixed sequence."""
        _check_count("n_events", n_events)
        _check_count("offset", offset)
        if offset + n_events > MAX_EVENTS:
            raise ConfigError(
                f"offset + n_events must be at most {MAX_EVENTS:,}, got {offset + n_events:,}"
            )
        if n_events == 0:
            return GeneratedEvents(
                EVENT_SCHEMA.empty_table(),
                LABEL_SCHEMA.empty_table(),
                CORRUPTED_SCHEMA.empty_table(),
            )
        settings, pools, salt = self._settings, build_pools(self.seed), seed_salt(self.seed)
        stop = offset + n_events
        parts = []
        for block_index in range(offset // BLOCK_SIZE, (stop - 1) // BLOCK_SIZE + 1):
            block_start = block_index * BLOCK_SIZE
            low, high = max(offset - block_start, 0), min(stop - block_start, BLOCK_SIZE)
            block = generate_block(settings, pools, block_index).rows(low, high)
            parts.append(block_tables(block, pools, salt, block_start + low - offset))
        events, labels, corrupted = (
            pa.concat_tables(tables) for tables in zip(*parts, strict=True)
        )
        return GeneratedEvents(events, labels, corrupted)

    def iter_chunks(
        self, n_events: int, chunk_size: int = DEFAULT_CHUNK_SIZE, offset: int = 0
    ) -> Iterator[GeneratedEvents]:
        """The first `n_events` rows (after `offset`) as consecutive batches of `chunk_size`.

        Rows are drawn in blocks of BLOCK_SIZE, so multiples of it waste the least work.
        """
        _check_count("n_events", n_events)
        _check_count("offset", offset)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ConfigError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        # Checked above, not inside the generator, so bad arguments fail before files open.
        starts = range(0, n_events, chunk_size)
        return (self.generate(min(chunk_size, n_events - s), offset + s) for s in starts)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")


ProgressCallback = Callable[[int], None]


def write_parquet(
    scenario: FraudScenario,
    n_events: int,
    path: str | Path,
    *,
    labels: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: ProgressCallback | None = None,
) -> None:
    """Stream `n_events` events into one zstd Parquet file (and labels, if given, alongside).

    `labels` is written as Parquet when it ends in .parquet, else as JSON lines;
    `on_chunk` is called with the number of events in each chunk written.
    """
    chunks = scenario.iter_chunks(n_events, chunk_size)
    drain(chunks, lambda: ParquetSink(path, EVENT_SCHEMA), labels, on_chunk)


def write_jsonl(
    scenario: FraudScenario,
    n_events: int,
    stream: BinaryIO,
    *,
    labels: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: ProgressCallback | None = None,
) -> None:
    """Write `n_events` events as JSON lines to `stream` (left open), labels as in write_parquet."""
    chunks = scenario.iter_chunks(n_events, chunk_size)
    drain(chunks, lambda: JsonLinesSink(stream), labels, on_chunk)


def write_labels(
    scenario: FraudScenario,
    n_events: int,
    path: str | Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: ProgressCallback | None = None,
) -> None:
    """Write the delayed ground truth of `n_events` events (Parquet for .parquet, else JSONL)."""
    drain(scenario.iter_chunks(n_events, chunk_size), None, path, on_chunk)
