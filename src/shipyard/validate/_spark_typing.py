"""How the Spark engine reads a raw column as the contract's type, as strictly as Polars reads it.

A value Polars would not read as the type is null here too, which the engine counts as a
``type`` failure; see ``spark_engine`` for where the two are known to differ.
"""

from __future__ import annotations

from typing import NoReturn

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipyard.core.errors import DataError
from shipyard.validate._spark_datetime import spark_datetime_pattern
from shipyard.validate.contract import ColumnSpec

# Strings accepted for bool columns, as in the Polars engine (compared lowercased).
_TRUE_WORDS, _FALSE_WORDS = ("true", "1"), ("false", "0")
# The text Polars reads as numbers (no surrounding space, no Java-only forms such as "1.5d").
_INT_TEXT = r"^[+-]?[0-9]+\z"
_FLOAT_TEXT = r"(?i)^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf|infinity|nan)\z"

TARGET_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "int": T.LongType(),
    "float": T.DoubleType(),
    "bool": T.BooleanType(),
    "timestamp": T.TimestampType(),
}
_TEXT_TYPES = (T.StringType, T.CharType, T.VarcharType)
_TEMPORAL_TYPES = (T.DateType, T.TimestampType, T.TimestampNTZType)
_READABLE_TYPES = (T.NullType, T.NumericType, T.BooleanType, *_TEXT_TYPES, *_TEMPORAL_TYPES)


def col(name: str) -> Column:
    """A column by its exact name, even when the name holds dots or backticks."""
    return F.col("`" + name.replace("`", "``") + "`")


def typed_value(spec: ColumnSpec, dtype: T.DataType) -> Column:
    """``spec``'s column cast to the contract type; null wherever the value cannot be read."""
    raw = col(spec.name)
    if isinstance(dtype, T.NullType):
        return raw.cast(TARGET_TYPES[spec.type])
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
    raw = col(spec.name)
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
