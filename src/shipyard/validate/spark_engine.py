"""Compiles a ``Contract`` into Spark SQL columns: the same checks and meaning as ``polars_engine``.

Every check is one boolean column and all of them are computed in one projection over the data;
only ``unique`` needs more (an aggregate of the duplicated values, joined back). The outcome holds
the same reason codes, in the same order, and the same counts as the Polars engine gives.

``validate_spark_to_parquet`` writes the valid and the quarantined rows from Spark itself, as
two folders of Parquet part files, so the driver never holds the data: only the totals (observed
in the same pass) and the duplicated values of ``unique`` columns reach it. ``validate_spark``
reads such folders back into the same ``ValidationOutcome`` as the Polars engine's, for data
small enough to compare row for row. Rows keep the order of Spark's input partitions (the
input's order for one file).

Text is parsed as strictly as Polars parses it: a text value that Polars would not read as the
contract's type is a ``type`` failure here too. Text timestamps are known to differ only where
Polars (chrono) is the more lenient one: leading whitespace before a number, a sign before the
year, and a leap second (``:60``) are read by Polars but are ``type`` failures here.
"""

from __future__ import annotations

import functools
import operator
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipyard.core.errors import ConfigError, ContractError
from shipyard.core.spark import local_session
from shipyard.validate._spark_typing import TARGET_TYPES, col, typed_value
from shipyard.validate.contract import ColumnSpec, Contract
from shipyard.validate.outcome import (
    REASON_CODES,
    ValidationOutcome,
    ValidationResult,
    require_columns,
)
from shipyard.validate.polars_stream import WrittenSplit
from shipyard.validate.report import histogram_sample

# Helper columns live beside the data during the pass. Not the Polars engine's NUL prefix: Arrow
# passes names to Polars as C strings, which end at a NUL.
_HELPER = "\u00a7shipyard:"
_IS_BAD = f"{_HELPER}is_bad"
_ROWS_IN = f"{_HELPER}rows_in"
_ROWS_BAD = f"{_HELPER}rows_bad"
_NEWEST_US = f"{_HELPER}newest_us"
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Z", "+00:00"})

_POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "timestamp": pl.Datetime("ms", "UTC"),
}

_SPARK_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    # Contract column names are exact, as they are in Polars.
    "spark.sql.caseSensitive": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "ERROR",
    # In local mode the driver is also the executor: this is the memory the tasks share.
    "spark.driver.memory": os.environ.get("SHIPYARD_SPARK_DRIVER_MEMORY", "2g"),
    # Microseconds: the unit of Spark's timestamps, so raw quarantined values are kept whole.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
_PARQUET_GLOB = "*.parquet"


@dataclass(frozen=True)
class _CompiledColumn:
    """One contract column as Spark columns: how to type it, and its named failure flags."""

    spec: ColumnSpec
    typed_name: str
    typed: Column
    checks: tuple[tuple[str, Column], ...]
    duplicates_name: str | None


def get_spark() -> SparkSession:
    """The active SparkSession, or a local[2] one set up for validation (UTC, quiet, no UI)."""
    session: SparkSession = local_session("local[2]", "shipyard-validate", _SPARK_SETTINGS)
    return session


def validate_spark(
    contract: Contract,
    data: str | Path | DataFrame,
    *,
    spark: SparkSession | None = None,
    now: datetime | None = None,
) -> ValidationOutcome:
    """Split ``data`` (a Spark DataFrame, or a Parquet path) as ``validate_frame`` splits it.

    For data that fits in memory: the split is written by ``validate_spark_to_parquet`` to a
    temporary folder and read back. ``spark`` reads a path (default: ``get_spark()``); ``now``
    is when freshness is judged.
    """
    with tempfile.TemporaryDirectory(prefix="shipyard-spark-") as tmp:
        valid_path, quarantine_path = Path(tmp) / "valid", Path(tmp) / "quarantine"
        split = validate_spark_to_parquet(
            contract,
            data,
            valid_path=valid_path,
            quarantine_path=quarantine_path,
            spark=spark,
            now=now,
        )
        written = _read_written(valid_path)
        valid = written.select(
            *(_polars_typed(spec.name, _POLARS_TYPES[spec.type]) for spec in contract.columns),
            *(name for name in written.columns if name.startswith("_")),
        )
        quarantine = _read_written(quarantine_path).with_columns(
            pl.col(REASON_CODES).cast(pl.List(pl.String()))
        )
    result = split.result
    return ValidationOutcome(
        contract=contract,
        valid=valid,
        quarantine=quarantine,
        check_counts=result.check_counts,
        rows_in=result.rows_in,
        extra_columns=result.extra_columns,
        missing_columns=result.missing_columns,
        newest=result.newest,
        checked_at=result.checked_at,
    )


def validate_spark_to_parquet(
    contract: Contract,
    data: str | Path | DataFrame,
    *,
    valid_path: str | Path,
    quarantine_path: str | Path,
    spark: SparkSession | None = None,
    now: datetime | None = None,
) -> WrittenSplit:
    """Validate ``data`` and write each side of the split from Spark, as a folder of Parquet parts.

    The counts of the result come from the written folders and are checked against the rows
    read. Writing somewhere temporary and moving the folders into place is the caller's.
    """
    checked_at = now or datetime.now(UTC)
    frame = data if isinstance(data, DataFrame) else (spark or get_spark()).read.parquet(str(data))
    session = frame.sparkSession
    _require_utc(session)
    schema = {field.name: field.dataType for field in frame.schema.fields}
    require_columns(contract, list(schema))
    compiled = [
        _compile_column(spec, schema.get(spec.name), index)
        for index, spec in enumerate(contract.columns)
    ]
    checks = {
        f"{_HELPER}check:{index}": check
        for index, check in enumerate(check for column in compiled for check in column.checks)
    }
    checked = _checked_rows(frame, compiled, checks)
    observation = Observation(f"shipyard-validate-{uuid.uuid4().hex}")
    observed = checked.observe(
        observation,
        *(F.count_if(col(name)).alias(name) for name in checks),
        F.count(F.lit(1)).alias(_ROWS_IN),
        F.count_if(col(_IS_BAD)).alias(_ROWS_BAD),
        _newest_us(contract, compiled).alias(_NEWEST_US),
    )
    try:
        # The first action, where the totals are observed, and where Java meets the patterns.
        _write(_valid_rows(observed, compiled, schema), valid_path)
    except Exception:
        _require_java_patterns(session, compiled)
        raise
    _write(_quarantined_rows(checked, checks, schema), quarantine_path)
    totals = observation.get
    rows_valid, rows_quarantined = (
        session.read.parquet(str(path)).count() for path in (valid_path, quarantine_path)
    )
    if totals[_ROWS_BAD] != rows_quarantined:
        raise AssertionError(
            f"validation flagged {totals[_ROWS_BAD]} bad rows but quarantined {rows_quarantined}"
        )
    newest_us = totals[_NEWEST_US]
    result = ValidationResult(
        contract=contract,
        check_counts={code: int(totals[name]) for name, (code, _) in checks.items()},
        rows_in=int(totals[_ROWS_IN]),
        rows_valid=rows_valid,
        rows_quarantined=rows_quarantined,
        extra_columns=tuple(
            n for n in schema if n not in contract.column_names and not n.startswith("_")
        ),
        missing_columns=tuple(name for name in contract.column_names if name not in schema),
        newest=None if newest_us is None else datetime.fromtimestamp(newest_us / 1e6, UTC),
        checked_at=checked_at,
    )
    written = pl.scan_parquet(Path(valid_path) / _PARQUET_GLOB)
    return WrittenSplit(result, histogram_sample(written, contract, rows_valid).collect())


def _checked_rows(
    frame: DataFrame, compiled: list[_CompiledColumn], checks: dict[str, tuple[str, Column]]
) -> DataFrame:
    """The data with typed values, one flag per check and the any-failed flag."""
    typed = frame.withColumns({column.typed_name: column.typed for column in compiled})
    return (
        _with_duplicate_flags(typed, compiled)
        .withColumns({name: flag for name, (_, flag) in checks.items()})
        .withColumn(_IS_BAD, functools.reduce(operator.or_, map(col, checks), F.lit(False)))
    )


def _valid_rows(
    checked: DataFrame, compiled: list[_CompiledColumn], schema: dict[str, T.DataType]
) -> DataFrame:
    """Contract columns typed and in contract order, then ``_`` metadata columns untouched."""
    metadata = [col(name) for name in schema if name.startswith("_")]
    typed = [col(column.typed_name).alias(column.spec.name) for column in compiled]
    return checked.where(~col(_IS_BAD)).select(*typed, *metadata)


def _quarantined_rows(
    checked: DataFrame, checks: dict[str, tuple[str, Column]], schema: dict[str, T.DataType]
) -> DataFrame:
    """The raw rows as they came in, plus every check each one failed as ``column:check``."""
    codes = [F.when(col(name), F.lit(code)) for name, (code, _) in checks.items()]
    reasons = F.array_compact(F.array(*codes))
    raw = [col(name) for name in schema]
    return checked.where(col(_IS_BAD)).select(*raw, reasons.alias(REASON_CODES))


def _write(frame: DataFrame, path: str | Path) -> None:
    frame.write.option("compression", "zstd").parquet(str(path))
    # Spark's bookkeeping (the _SUCCESS marker, Hadoop's .crc checksums) is not data.
    for leftover in [*Path(path).glob("_SUCCESS"), *Path(path).glob(".*.crc")]:
        leftover.unlink()


def _read_written(path: Path) -> pl.DataFrame:
    """A folder Spark wrote, its parts in order (Spark numbers them by input partition)."""
    return pl.read_parquet(sorted(path.glob(_PARQUET_GLOB)))


def _polars_typed(name: str, target: pl.DataType) -> pl.Expr:
    if isinstance(target, pl.Datetime):
        # Spark's timestamps are microseconds; the contract's are milliseconds in UTC.
        column = pl.col(name)
        return column.dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    return pl.col(name).cast(target)


def _require_utc(spark: SparkSession) -> None:
    # Text without an offset and naive timestamps are read in the session time zone; the
    # contract means UTC, as the Polars engine does.
    zone = spark.conf.get("spark.sql.session.timeZone")
    if zone not in _UTC_NAMES:
        raise ConfigError(
            f"Spark session time zone is {zone!r}, but contract timestamps are UTC; set "
            "spark.sql.session.timeZone=UTC on the session, or use get_spark()"
        )


def _compile_column(spec: ColumnSpec, dtype: T.DataType | None, index: int) -> _CompiledColumn:
    typed_name = f"{_HELPER}typed:{index}"
    target = TARGET_TYPES[spec.type]
    names = spec.check_names
    if dtype is None:
        # An optional column absent from the data is all-null, so none of its checks can fail.
        checks = tuple((f"{spec.name}:{check}", F.lit(False)) for check in names)
        return _CompiledColumn(spec, typed_name, F.lit(None).cast(target), checks, None)
    raw, typed = col(spec.name), col(typed_name)
    is_float = isinstance(dtype, T.FloatType | T.DoubleType)
    is_present = raw.isNotNull() & ~F.isnan(raw) if is_float else raw.isNotNull()
    failed = {
        "not_null": ~is_present,
        # Lossless when the data already has the contract's type: skip the work of a type check.
        "type": F.lit(False) if dtype == target else is_present & typed.isNull(),
    }
    # Value checks see only typed, non-null values; a null comparison counts as a pass.
    if spec.min is not None:
        failed["min"] = F.coalesce(typed < F.lit(spec.min), F.lit(False))
    if spec.max is not None:
        failed["max"] = F.coalesce(typed > F.lit(spec.max), F.lit(False))
    if spec.allowed is not None:
        failed["allowed"] = F.coalesce(~typed.isin(*spec.allowed), F.lit(False))
    duplicates_name = f"{_HELPER}duplicated:{index}" if spec.unique else None
    if duplicates_name is not None:
        failed["unique"] = typed.isNotNull() & F.coalesce(col(duplicates_name), F.lit(False))
    if spec.pattern is not None:
        failed["pattern"] = F.coalesce(~typed.rlike(_java_pattern(spec.pattern)), F.lit(False))
    checks = tuple((f"{spec.name}:{check}", failed[check]) for check in names)
    return _CompiledColumn(spec, typed_name, typed_value(spec, dtype), checks, duplicates_name)


def _java_pattern(pattern: str) -> str:
    # The contract's ``^(?:PATTERN)$`` in Java terms: Java's ``$`` also matches before a final
    # line break and its ``\d``/``\w`` are ASCII-only unless (?U), where Rust's are Unicode.
    return f"(?U)^(?:{pattern})\\z"


def _require_java_patterns(spark: SparkSession, compiled: list[_CompiledColumn]) -> None:
    """Refuse, naming it, a pattern Java's regex engine cannot compile (a tiny job each)."""
    for spec in (c.spec for c in compiled if c.spec.pattern is not None):
        try:
            spark.range(1).select(F.lit("").rlike(_java_pattern(spec.pattern or ""))).collect()
        except Exception as exc:
            problem = next((line for line in str(exc).splitlines() if "Pattern" in line), "")
            raise ContractError(
                f"column {spec.name!r}: pattern {spec.pattern!r} is not supported by Java's "
                f"regex engine, which Spark uses: {problem.strip() or type(exc).__name__}"
            ) from None


def _with_duplicate_flags(frame: DataFrame, compiled: list[_CompiledColumn]) -> DataFrame:
    """Joins on a flag per ``unique`` column: True where its typed value occurs more than once."""
    for column in compiled:
        if column.duplicates_name is None:
            continue
        key = f"{column.duplicates_name}:key"
        duplicated = (
            frame.where(col(column.typed_name).isNotNull())
            .groupBy(col(column.typed_name).alias(key))
            .count()
            .where(F.col("count") > 1)
            .select(col(key), F.lit(True).alias(column.duplicates_name))
            # Computed once here, not again by each of the two writes that read the flags.
            .localCheckpoint()
        )
        # Broadcast, so the data is not shuffled for the join and keeps its order; only the
        # duplicated values travel (through the driver), which is the few, not the data.
        joined = frame.join(F.broadcast(duplicated), col(column.typed_name) == col(key), "left")
        frame = joined.drop(key)
    return frame


def _newest_us(contract: Contract, compiled: list[_CompiledColumn]) -> Column:
    """The latest parsed freshness value as epoch microseconds (collecting a timestamp to Python
    would turn it into a naive local time)."""
    if contract.freshness is None:
        return F.lit(None).cast(T.LongType())
    typed = next(c.typed_name for c in compiled if c.spec.name == contract.freshness.column)
    return F.unix_micros(F.max(col(typed)))
