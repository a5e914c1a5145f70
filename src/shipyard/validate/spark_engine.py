"""Compiles a ``Contract`` into Spark SQL columns: the same checks and meaning as ``polars_engine``.

Every check is one boolean column and all of them are computed in one projection over the data;
only ``unique`` needs more (an aggregate of the duplicated values, joined back). The outcome holds
the same reason codes, in the same order, and the same counts as the Polars engine gives.

The valid and quarantined rows are collected to Polars through Arrow so that the outcome is the
same ``ValidationOutcome`` as the Polars engine's, which lets the two be compared row for row.
That needs the data to fit in driver memory: at scale, a pipeline should write the two sides
straight from Spark instead of collecting them.

Text is parsed as strictly as Polars parses it: a text value that Polars would not read as the
contract's type is a ``type`` failure here too. Text timestamps are known to differ only where
Polars (chrono) is the more lenient one: leading whitespace before a number, a sign before the
year, and a leap second (``:60``) are read by Polars but are ``type`` failures here.
"""

from __future__ import annotations

import functools
import operator
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import polars as pl
import pyarrow as pa
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipyard.core.errors import ConfigError, ContractError, DataError
from shipyard.validate._spark_datetime import spark_datetime_pattern
from shipyard.validate.contract import ColumnSpec, Contract
from shipyard.validate.outcome import REASON_CODES, ValidationOutcome, require_columns

# Helper columns live beside the data during the pass. Not the Polars engine's NUL prefix: Arrow
# passes names to Polars as C strings, which end at a NUL.
_HELPER = "\u00a7shipyard:"
_IS_BAD = f"{_HELPER}is_bad"
# Spark keeps no row order through the join of ``unique``; the outcome is put back in input order.
_ROW_ID = f"{_HELPER}row_id"
_ROWS_IN = f"{_HELPER}rows_in"
_NEWEST_US = f"{_HELPER}newest_us"
# Strings accepted for bool columns, as in the Polars engine (compared lowercased).
_TRUE_WORDS, _FALSE_WORDS = ("true", "1"), ("false", "0")
# The text Polars reads as numbers (no surrounding space, no Java-only forms such as "1.5d").
_INT_TEXT = r"^[+-]?[0-9]+\z"
_FLOAT_TEXT = r"(?i)^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf|infinity|nan)\z"
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Z", "+00:00"})

_TARGET_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "int": T.LongType(),
    "float": T.DoubleType(),
    "bool": T.BooleanType(),
    "timestamp": T.TimestampType(),
}
_POLARS_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "timestamp": pl.Datetime("ms", "UTC"),
}
_TEXT_TYPES = (T.StringType, T.CharType, T.VarcharType)
_TEMPORAL_TYPES = (T.DateType, T.TimestampType, T.TimestampNTZType)
_READABLE_TYPES = (T.NullType, T.NumericType, T.BooleanType, *_TEXT_TYPES, *_TEMPORAL_TYPES)

_SPARK_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    # Contract column names are exact, as they are in Polars.
    "spark.sql.caseSensitive": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "ERROR",
    # Collecting both sides to Polars holds them in the driver: 2g ran out at 5M fraud rows.
    "spark.driver.memory": os.environ.get("SHIPYARD_SPARK_DRIVER_MEMORY", "6g"),
    "spark.driver.maxResultSize": "0",
}


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
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.master("local[2]").appName("shipyard-validate")
    for key, value in _SPARK_SETTINGS.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def validate_spark(
    contract: Contract,
    data: str | Path | DataFrame,
    *,
    spark: SparkSession | None = None,
    now: datetime | None = None,
) -> ValidationOutcome:
    """Split ``data`` (a Spark DataFrame, or a Parquet path) as ``validate_frame`` splits it.

    ``spark`` reads a path (default: ``get_spark()``); ``now`` is when freshness is judged.
    """
    checked_at = now or datetime.now(UTC)
    frame = data if isinstance(data, DataFrame) else (spark or get_spark()).read.parquet(str(data))
    _require_utc(frame.sparkSession)
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
        *(F.count_if(_col(name)).alias(name) for name in checks),
        F.count(F.lit(1)).alias(_ROWS_IN),
        _newest_us(contract, compiled).alias(_NEWEST_US),
    )
    split = _collect_split(observed, compiled, checks, schema)
    totals = observation.get
    newest_us = totals[_NEWEST_US]
    return ValidationOutcome(
        contract=contract,
        valid=_valid_rows(split, compiled, schema),
        quarantine=_quarantined_rows(split, schema),
        check_counts={code: int(totals[name]) for name, (code, _) in checks.items()},
        rows_in=int(totals[_ROWS_IN]),
        extra_columns=tuple(
            n for n in schema if n not in contract.column_names and not n.startswith("_")
        ),
        missing_columns=tuple(name for name in contract.column_names if name not in schema),
        newest=None if newest_us is None else datetime.fromtimestamp(newest_us / 1e6, UTC),
        checked_at=checked_at,
    )


def _checked_rows(
    frame: DataFrame, compiled: list[_CompiledColumn], checks: dict[str, tuple[str, Column]]
) -> DataFrame:
    """The data with a row id, typed values, one flag per check and the any-failed flag."""
    typed = frame.withColumn(_ROW_ID, F.monotonically_increasing_id()).withColumns(
        {column.typed_name: column.typed for column in compiled}
    )
    return (
        _with_duplicate_flags(typed, compiled)
        .withColumns({name: flag for name, (_, flag) in checks.items()})
        .withColumn(_IS_BAD, functools.reduce(operator.or_, map(_col, checks), F.lit(False)))
    )


def _collect_split(
    observed: DataFrame,
    compiled: list[_CompiledColumn],
    checks: dict[str, tuple[str, Column]],
    schema: dict[str, T.DataType],
) -> pl.DataFrame:
    """Both sides in one pass and one Arrow collect: typed values on valid rows, raw values and
    reason codes on bad rows (nulls elsewhere), in input order.

    The totals are observed in the same pass. A pipeline at scale would write this frame from
    Spark, partitioned by the bad-row flag, instead of collecting it.
    """
    is_bad = _col(_IS_BAD)
    codes = [F.when(_col(name), F.lit(code)) for name, (code, _) in checks.items()]
    reasons = F.array_compact(F.array(*codes)) if codes else F.array().cast("array<string>")
    raw = [
        _col(name) if name.startswith("_") else F.when(is_bad, _col(name)).alias(name)
        for name in schema
    ]
    try:
        table: pa.Table = observed.select(
            _col(_ROW_ID),
            is_bad,
            *(F.when(~is_bad, _col(c.typed_name)).alias(c.typed_name) for c in compiled),
            *raw,
            F.when(is_bad, reasons).alias(REASON_CODES),
        ).toArrow()
    except Exception:
        # The first action is where Java meets the patterns; name a pattern it cannot compile.
        _require_java_patterns(observed.sparkSession, compiled)
        raise
    collected = pl.from_arrow(table)
    assert isinstance(collected, pl.DataFrame)
    return collected.sort(_ROW_ID)


def _valid_rows(
    split: pl.DataFrame, compiled: list[_CompiledColumn], schema: dict[str, T.DataType]
) -> pl.DataFrame:
    """Contract columns typed and in contract order, then ``_`` metadata columns untouched."""
    metadata = [name for name in schema if name.startswith("_")]
    return (
        split.lazy()
        .filter(~pl.col(_IS_BAD))
        .select(
            *(
                _polars_typed(c.typed_name, _POLARS_TYPES[c.spec.type]).alias(c.spec.name)
                for c in compiled
            ),
            *metadata,
        )
        .collect()
    )


def _quarantined_rows(split: pl.DataFrame, schema: dict[str, T.DataType]) -> pl.DataFrame:
    """The raw rows as they came in, plus every check each one failed as ``column:check``."""
    return (
        split.lazy()
        .filter(pl.col(_IS_BAD))
        .select(*schema, pl.col(REASON_CODES).cast(pl.List(pl.String())))
        .collect()
    )


def _polars_typed(name: str, target: pl.DataType) -> pl.Expr:
    if isinstance(target, pl.Datetime):
        # Arrow carries Spark's timestamps as microseconds in the session time zone.
        return pl.col(name).dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    return pl.col(name).cast(target)


def _col(name: str) -> Column:
    """A column by its exact name, even when the name holds dots or backticks."""
    return F.col("`" + name.replace("`", "``") + "`")


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
    target = _TARGET_TYPES[spec.type]
    names = spec.check_names
    if dtype is None:
        # An optional column absent from the data is all-null, so none of its checks can fail.
        checks = tuple((f"{spec.name}:{check}", F.lit(False)) for check in names)
        return _CompiledColumn(spec, typed_name, F.lit(None).cast(target), checks, None)
    raw, typed = _col(spec.name), _col(typed_name)
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
        failed["unique"] = typed.isNotNull() & F.coalesce(_col(duplicates_name), F.lit(False))
    if spec.pattern is not None:
        failed["pattern"] = F.coalesce(~typed.rlike(_java_pattern(spec.pattern)), F.lit(False))
    checks = tuple((f"{spec.name}:{check}", failed[check]) for check in names)
    return _CompiledColumn(spec, typed_name, _typed_value(spec, dtype), checks, duplicates_name)


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
            frame.where(_col(column.typed_name).isNotNull())
            .groupBy(_col(column.typed_name).alias(key))
            .count()
            .where(F.col("count") > 1)
            .select(_col(key), F.lit(True).alias(column.duplicates_name))
        )
        joined = frame.join(duplicated, _col(column.typed_name) == _col(key), "left")
        frame = joined.drop(key)
    return frame


def _newest_us(contract: Contract, compiled: list[_CompiledColumn]) -> Column:
    """The latest parsed freshness value as epoch microseconds (collecting a timestamp to Python
    would turn it into a naive local time)."""
    if contract.freshness is None:
        return F.lit(None).cast(T.LongType())
    typed = next(c.typed_name for c in compiled if c.spec.name == contract.freshness.column)
    return F.unix_micros(F.max(_col(typed)))


def _typed_value(spec: ColumnSpec, dtype: T.DataType) -> Column:
    """``spec``'s column cast to the contract type; null wherever the value cannot be read."""
    raw = _col(spec.name)
    if isinstance(dtype, T.NullType):
        return raw.cast(_TARGET_TYPES[spec.type])
    if not isinstance(dtype, _READABLE_TYPES):
        _raise_unreadable(spec, dtype)
    is_text = isinstance(dtype, _TEXT_TYPES)
    if spec.type == "string":
        return raw.cast(T.StringType())
    if spec.type == "timestamp":
        return _timestamp_value(spec, dtype)
    if isinstance(dtype, _TEMPORAL_TYPES):
        _raise_unreadable(spec, dtype)
    if spec.type == "bool":
        if isinstance(dtype, T.BooleanType):
            return raw
        if is_text:
            word = F.lower(raw)
            return F.when(word.isin(*_TRUE_WORDS), True).when(word.isin(*_FALSE_WORDS), False)
        return F.when(raw == 1, True).when(raw == 0, False)
    if spec.type == "float":
        number = F.when(raw.rlike(_FLOAT_TEXT), raw) if is_text else raw
        as_float = number.try_cast(T.DoubleType())
        return F.nanvl(as_float, F.lit(None).cast(T.DoubleType()))
    if isinstance(dtype, T.FloatType | T.DoubleType | T.DecimalType):
        # A float is an int only when it has no fraction; a plain cast would truncate 2.5 to 2.
        number = raw.cast(T.DoubleType())
        whole = number.try_cast(T.LongType())
        return F.when(whole.cast(T.DoubleType()) == number, whole)
    return (F.when(raw.rlike(_INT_TEXT), raw) if is_text else raw).try_cast(T.LongType())


def _timestamp_value(spec: ColumnSpec, dtype: T.DataType) -> Column:
    raw = _col(spec.name)
    if isinstance(dtype, _TEXT_TYPES):
        if spec.timestamp_format is None:
            raise DataError(
                f"column {spec.name!r} holds text, but the contract gives no timestamp_format "
                "to parse it with; declare one, e.g. '%Y-%m-%dT%H:%M:%S%.3fZ'"
            )
        pattern, regex = spark_datetime_pattern(spec.name, spec.timestamp_format)
        parsed = F.try_to_timestamp(F.when(raw.rlike(regex), raw), F.lit(pattern))
    elif isinstance(dtype, _TEMPORAL_TYPES):
        # Naive timestamps and dates are read in the session time zone, which is UTC.
        parsed = raw.cast(T.TimestampType())
    else:
        _raise_unreadable(spec, dtype)
    # Polars keeps milliseconds; Spark keeps microseconds.
    return F.date_trunc("millisecond", parsed)


def _raise_unreadable(spec: ColumnSpec, dtype: T.DataType) -> NoReturn:
    raise DataError(
        f"column {spec.name!r} has Spark type {dtype.simpleString()}, which cannot be read as "
        f"{spec.type}; fix the data's schema or the contract"
    )
