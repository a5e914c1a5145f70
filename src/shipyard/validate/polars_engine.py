"""Compiles a ``Contract`` into Polars expressions and splits a frame into valid and quarantined.

Every check of every column is one boolean expression, and all of them run in one lazy query
(one ``collect``), so the cost grows with the number of checks, never with a Python row loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

import polars as pl

from shipyard.core.errors import ContractError, DataError
from shipyard.validate.contract import ColumnSpec, Contract, anchored_pattern
from shipyard.validate.outcome import REASON_CODES, ValidationOutcome, require_columns

# Helper columns live beside the data during the pass; the NUL prefix cannot clash with real names.
_HELPER = "\x00shipyard:"
# Marks the rows that failed any check; computed in the same query as the checks.
_IS_BAD = f"{_HELPER}is_bad"
# Strings accepted for bool columns (data arriving as text, e.g. from CSV or loose JSON).
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False}

_TARGET_DTYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "timestamp": pl.Datetime("ms", "UTC"),
}


@dataclass(frozen=True)
class _CompiledColumn:
    """One contract column as expressions: how to type it, and its named failure flags."""

    spec: ColumnSpec
    typed_name: str
    typed: pl.Expr
    checks: tuple[tuple[str, pl.Expr], ...]


def validate_frame(
    contract: Contract, frame: pl.DataFrame | pl.LazyFrame, *, now: datetime | None = None
) -> ValidationOutcome:
    """Split ``frame`` into contract-typed valid rows and raw quarantined rows with reasons.

    ``now`` is when the contract's freshness is judged (default: the current UTC time).
    """
    checked_at = now or datetime.now(UTC)
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    require_columns(contract, schema.names())
    compiled = [
        _compile_column(spec, schema.get(spec.name), f"{_HELPER}typed:{index}")
        for index, spec in enumerate(contract.columns)
    ]
    all_checks = [check for column in compiled for check in column.checks]
    checks = {f"{_HELPER}check:{index}": check for index, check in enumerate(all_checks)}
    # One query: typed values first, then every check reads them, so each value is parsed once.
    checked = (
        lazy.with_columns([column.typed.alias(column.typed_name) for column in compiled])
        .with_columns([flag.alias(name) for name, (_, flag) in checks.items()])
        .with_columns(pl.any_horizontal(list(checks)).alias(_IS_BAD))
        .collect()
    )
    newest = _newest(contract, compiled)
    *failures, latest = checked.select(*(pl.col(name).sum() for name in checks), newest).row(0)
    return ValidationOutcome(
        contract=contract,
        valid=_valid_rows(checked, compiled, schema),
        quarantine=_quarantined_rows(checked, checks, schema),
        check_counts={code: int(n) for (code, _), n in zip(checks.values(), failures, strict=True)},
        rows_in=checked.height,
        extra_columns=_extra_columns(contract, schema),
        missing_columns=tuple(name for name in contract.column_names if name not in schema),
        newest=latest,
        checked_at=checked_at,
    )


def _newest(contract: Contract, compiled: list[_CompiledColumn]) -> pl.Expr:
    """The latest parsed value of the freshness column, over every row (null if none)."""
    if contract.freshness is None:
        return pl.lit(None, dtype=_TARGET_DTYPES["timestamp"]).alias("newest")
    typed = next(c.typed_name for c in compiled if c.spec.name == contract.freshness.column)
    return pl.col(typed).max().alias("newest")


def _extra_columns(contract: Contract, schema: pl.Schema) -> tuple[str, ...]:
    """Data columns the contract does not declare, other than ``_`` metadata: left out of valid."""
    declared = set(contract.column_names)
    return tuple(n for n in schema.names() if n not in declared and not n.startswith("_"))


def _valid_rows(
    checked: pl.DataFrame, compiled: list[_CompiledColumn], schema: pl.Schema
) -> pl.DataFrame:
    """Contract columns typed and in contract order, then ``_`` metadata columns untouched."""
    metadata = [name for name in schema.names() if name.startswith("_")]
    # Lazy so that only the selected columns are filtered, not the helper columns too.
    good = checked.lazy().filter(~pl.col(_IS_BAD))
    return good.select(
        *(pl.col(column.typed_name).alias(column.spec.name) for column in compiled), *metadata
    ).collect()


def _quarantined_rows(
    checked: pl.DataFrame, checks: dict[str, tuple[str, pl.Expr]], schema: pl.Schema
) -> pl.DataFrame:
    """The raw rows as they came in, plus every check each one failed as ``column:check``."""
    reasons = pl.concat_list(
        [pl.when(pl.col(name)).then(pl.lit(code)) for name, (code, _) in checks.items()]
    ).list.drop_nulls()
    bad = checked.lazy().filter(pl.col(_IS_BAD))
    return bad.select(*schema.names(), reasons.alias(REASON_CODES)).collect()


def _compile_column(
    spec: ColumnSpec, dtype: pl.DataType | None, typed_name: str
) -> _CompiledColumn:
    target = _TARGET_DTYPES[spec.type]
    if dtype is None:
        # An optional column absent from the data is all-null, so none of its checks can fail.
        checks = tuple((f"{spec.name}:{check}", pl.lit(False)) for check in spec.check_names)
        return _CompiledColumn(spec, typed_name, pl.lit(None, dtype=target), checks)
    raw, typed = pl.col(spec.name), pl.col(typed_name)
    is_present = raw.is_not_null() & ~raw.is_nan() if dtype.is_float() else raw.is_not_null()
    failed = {
        "not_null": ~is_present,
        # Lossless when the data already has the contract's type: skip the work of a type check.
        "type": pl.lit(False) if dtype == target else is_present & typed.is_null(),
    }
    # Value checks see only typed, non-null values; a null comparison counts as a pass.
    if spec.min is not None:
        failed["min"] = (typed < spec.min).fill_null(False)
    if spec.max is not None:
        failed["max"] = (typed > spec.max).fill_null(False)
    if spec.allowed is not None:
        domain = pl.lit(pl.Series(values=spec.allowed, dtype=pl.String())).implode()
        failed["allowed"] = (~typed.is_in(domain)).fill_null(False)
    if spec.unique:
        # Exact (grouped on the value itself), and several times faster than is_duplicated().
        failed["unique"] = typed.is_not_null() & (pl.len().over(typed) > 1)
    if spec.pattern is not None:
        failed["pattern"] = (~typed.str.contains(_checked_pattern(spec))).fill_null(False)
    checks = tuple((f"{spec.name}:{check}", failed[check]) for check in spec.check_names)
    return _CompiledColumn(spec, typed_name, _typed_value(spec, dtype), checks)


def _checked_pattern(spec: ColumnSpec) -> str:
    """The anchored regex, refused early if Polars' regex engine cannot compile it."""
    regex = anchored_pattern(spec.pattern or "")
    try:
        pl.Series([""], dtype=pl.String()).str.contains(regex)
    except pl.exceptions.ComputeError as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        problem = next((line for line in lines if line.startswith("error:")), "invalid regex")
        raise ContractError(
            f"column {spec.name!r}: pattern {spec.pattern!r} is not supported by the Polars "
            f"regex engine: {problem}"
        ) from None
    return regex


def _typed_value(spec: ColumnSpec, dtype: pl.DataType) -> pl.Expr:
    """``spec``'s column cast to the contract type; null wherever the value cannot be read."""
    raw = pl.col(spec.name)
    if dtype == pl.Null():
        return raw.cast(_TARGET_DTYPES[spec.type])
    if dtype.is_nested() or dtype in (pl.Binary(), pl.Object()):
        _raise_unreadable(spec, dtype)
    is_text = _is_text(dtype)
    text = raw.cast(pl.String())
    if spec.type == "string":
        return text
    if spec.type == "timestamp":
        return _timestamp_value(spec, dtype)
    if dtype.is_temporal():
        _raise_unreadable(spec, dtype)
    if spec.type == "bool":
        if is_text:
            return text.str.to_lowercase().replace_strict(
                _BOOL_WORDS, default=None, return_dtype=pl.Boolean()
            )
        return pl.when(raw == 1).then(True).when(raw == 0).then(False)
    if spec.type == "float":
        return (text if is_text else raw).cast(pl.Float64(), strict=False).fill_nan(None)
    if dtype.is_float() or dtype.is_decimal():
        # A float is an int only when it has no fraction; a plain cast would truncate 2.5 to 2.
        number = raw.cast(pl.Float64())
        return pl.when(number.floor() == number).then(number.cast(pl.Int64(), strict=False))
    return (text if is_text else raw).cast(pl.Int64(), strict=False)


def _timestamp_value(spec: ColumnSpec, dtype: pl.DataType) -> pl.Expr:
    raw = pl.col(spec.name)
    if _is_text(dtype):
        if spec.timestamp_format is None:
            # Polars could infer a format, but from the first value only: results would then
            # depend on row order, which a contract must not.
            raise DataError(
                f"column {spec.name!r} holds text, but the contract gives no timestamp_format "
                "to parse it with; declare one, e.g. '%Y-%m-%dT%H:%M:%S%.3fZ'"
            )
        return raw.cast(pl.String()).str.to_datetime(
            format=spec.timestamp_format, time_unit="ms", time_zone="UTC", strict=False, exact=True
        )
    if isinstance(dtype, pl.Datetime):
        # Naive datetimes are taken to be UTC, as the contract's timestamps are.
        in_utc = raw.dt.replace_time_zone("UTC") if dtype.time_zone is None else raw
        return in_utc.dt.convert_time_zone("UTC").dt.cast_time_unit("ms")
    if dtype == pl.Date():
        return raw.cast(pl.Datetime("ms")).dt.replace_time_zone("UTC")
    _raise_unreadable(spec, dtype)


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String() or isinstance(dtype, pl.Categorical | pl.Enum)


def _raise_unreadable(spec: ColumnSpec, dtype: pl.DataType) -> NoReturn:
    raise DataError(
        f"column {spec.name!r} has dtype {dtype}, which cannot be read as {spec.type}; "
        "fix the data's schema or the contract"
    )
