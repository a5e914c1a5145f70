"""Streams a dataset through a compiled contract into folders of valid and quarantined Parquet.

The data goes through in chunks of ``CHUNK_ROWS`` rows. Each chunk is one streaming query with
four outputs, and Polars reads the chunk once for all of them: its valid rows and its quarantined
rows (each sunk straight to a part file), its totals (failures per check, rows, newest value)
and an evenly spaced sample of its valid rows for the report's histograms. Chunks bound memory:
Polars buffers whatever one output of a query has not consumed yet while a faster one moves on,
so one query over all the data would hold more the more data there is. Example::

    split = validate_to_parquet(
        contract, pl.scan_parquet("landing/*.parquet"),
        valid_path="valid.parquet", quarantine_path="quarantine.parquet",
    )
    split.result.passed, split.result.check_counts["amount:min"]

Both paths become folders of ``part-00000.parquet``, ``part-00001.parquet``, ... in input order,
the layout Spark writes and every Parquet reader takes as one dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from shipyard.validate.contract import Contract
from shipyard.validate.outcome import ValidationResult
from shipyard.validate.polars_engine import CompiledContract, compile_contract
from shipyard.validate.report import histogram_sample

# Level 1 writes ~25 % faster than zstd's default 3 for ~5 % more bytes on event data.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "statistics": True,
}
# About 1.1 GB of peak memory on the fraud events, whatever the size of the input; each chunk
# costs a little time (a pipeline filling and draining), so they are not made smaller.
CHUNK_ROWS = 2_500_000


@dataclass(frozen=True)
class WrittenSplit:
    """What ``validate_to_parquet`` wrote, counted, and sampled for the report."""

    result: ValidationResult
    # The numeric columns of about HISTOGRAM_SAMPLE_ROWS evenly spaced valid rows.
    sample: pl.DataFrame


def validate_to_parquet(
    contract: Contract,
    source: pl.LazyFrame,
    *,
    valid_path: str | Path,
    quarantine_path: str | Path,
    now: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> WrittenSplit:
    """Validate ``source`` as ``validate_frame`` does, writing each side of the split to a folder
    of Parquet part files (created here; they must not exist yet).

    The counts of the result come from the written files' footers and are checked against the
    rows read and the rows the source holds: a lost or duplicated row fails with
    ``AssertionError``. Writing somewhere temporary and moving the folders into place is the
    caller's.
    """
    checked_at = now or datetime.now(UTC)
    compiled = compile_contract(contract, source)
    # Parquet and in-memory sources know their length without reading the data.
    rows_in = source.select(pl.len()).collect().item()
    valid_dir, quarantine_dir = Path(valid_path), Path(quarantine_path)
    valid_dir.mkdir(parents=True)
    quarantine_dir.mkdir(parents=True)
    totals, samples = [], []
    # At least one chunk, so that empty data still gets its (empty) files with their schemas.
    for index, offset in enumerate(range(0, max(rows_in, 1), chunk_rows)):
        part = f"part-{index:05d}.parquet"
        chunk = source.slice(offset, chunk_rows)
        chunk_totals, sample = _split_chunk(
            compiled, chunk, valid_dir / part, quarantine_dir / part, rows_in
        )
        totals.append(chunk_totals)
        samples.append(sample)
    result = compiled.result(
        pl.concat(totals), _rows_in_files(valid_dir), _rows_in_files(quarantine_dir), checked_at
    )
    if result.rows_in != rows_in:
        raise AssertionError(f"validation read {result.rows_in} rows of a source of {rows_in}")
    return WrittenSplit(result=result, sample=pl.concat(samples))


def _split_chunk(
    compiled: CompiledContract,
    chunk: pl.LazyFrame,
    valid_path: Path,
    quarantine_path: Path,
    rows_in: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One streaming pass over ``chunk``: both part files written; its totals and its sample."""
    # One cached subplan for every output: without it the optimiser gives each output its own
    # projection of the scan, and the chunk is read and checked twice.
    checked = compiled.checked(chunk).cache()
    valid = compiled.valid_rows(checked)
    quarantined = compiled.quarantined_rows(checked)
    _, _, totals, sample = pl.collect_all(
        [
            valid.sink_parquet(valid_path, lazy=True, **PARQUET_OPTIONS),
            quarantined.sink_parquet(quarantine_path, lazy=True, **PARQUET_OPTIONS),
            compiled.totals(checked),
            # The same spacing in every chunk: about HISTOGRAM_SAMPLE_ROWS over all the data.
            histogram_sample(valid, compiled.contract, rows_in),
        ],
        engine="streaming",
    )
    return totals, sample


def _rows_in_files(folder: Path) -> int:
    """The rows of the Parquet part files in ``folder``, from their footers."""
    parts = sorted(folder.glob("part-*.parquet"))
    return int(pl.scan_parquet(parts).select(pl.len()).collect().item())
