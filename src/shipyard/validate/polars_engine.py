"""Compiles a ``Contract`` into Polars expressions and splits a frame into valid and quarantined.

Every check of every column is one boolean expression, and all of them run in one lazy query,
so the cost grows with the number of checks, never with a Python row loop. ``compile_contract``
gives those expressions to any Polars-based runner: ``validate_frame`` here collects the split in
memory; ``validate_to_parquet`` (``polars_stream``) streams it into Parquet files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

import polars as pl

from shipyard.core.errors import ContractError, DataError
from shipyard.validate.contract import ColumnSpec, Contract, anchored_pattern
from shipyard.validate.outcome import (
    REASON_CODES,
    ValidationOutcome,
    ValidationResult,
    require_columns,
)

# Helper columns live beside the data during the pass; the NUL prefix cannot clash with real names.
_HELPER = "\x00shipyard:"
# Marks the rows that failed any check; computed in the same query as the checks.
_IS_BAD = f"{_HELPER}is_bad"
# Names of the one-row totals and of the duplicate search's columns.
_ROWS_IN, _ROWS_BAD, _NEWEST = f"{_HELPER}rows_in", f"{_HELPER}rows_bad", f"{_HELPER}newest"
_VALUE, _HASH = f"{_HELPER}value", f"{_HELPER}hash"
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


@dataclass(frozen=True)
class CompiledContract:
    """A contract compiled against one data schema: expressions that type, check and split.

    Every engine built on Polars (in memory, or streaming to files) runs these same expressions,
    so they agree on every count and every row.
    """

    contract: Contract
    schema: pl.Schema
    columns: tuple[_CompiledColumn, ...]
    # Helper column name -> (check code, failure flag), in reason-code order.
    checks: dict[str, tuple[str, pl.Expr]]

    def checked(self, lazy: pl.LazyFrame) -> pl.LazyFrame:
        """The data plus its typed values, one flag per check and the any-failed flag."""
        # Typed values first, then every check reads them, so each value is parsed once.
        return (
            lazy.with_columns([column.typed.alias(column.typed_name) for column in self.columns])
            .with_columns([flag.alias(name) for name, (_, flag) in self.checks.items()])
            .with_columns(pl.any_horizontal(list(self.checks)).alias(_IS_BAD))
        )

    def valid_rows(self, checked: pl.LazyFrame) -> pl.LazyFrame:
        """Contract columns typed and in contract order, then ``_`` metadata columns untouched."""
        metadata = [name for name in self.schema.names() if name.startswith("_")]
        return checked.filter(~pl.col(_IS_BAD)).select(
            *(pl.col(column.typed_name).alias(column.spec.name) for column in self.columns),
            *metadata,
        )

    def quarantined_rows(self, checked: pl.LazyFrame) -> pl.LazyFrame:
        """The raw rows as they came in, plus every check each one failed as ``column:check``."""
        reasons = pl.concat_list(
            [pl.when(pl.col(name)).then(pl.lit(code)) for name, (code, _) in self.checks.items()]
        ).list.drop_nulls()
        return checked.filter(pl.col(_IS_BAD)).select(
            *self.schema.names(), reasons.alias(REASON_CODES)
        )

    def totals(self, checked: pl.LazyFrame) -> pl.LazyFrame:
        """One row: the failures of every check, the rows in, the bad rows and the newest value."""
        return checked.select(
            *(pl.col(name).sum() for name in self.checks),
            pl.len().alias(_ROWS_IN),
            pl.col(_IS_BAD).sum().alias(_ROWS_BAD),
            self._newest().alias(_NEWEST),
        )

    def result(
        self, totals: pl.DataFrame, rows_valid: int, rows_quarantined: int, checked_at: datetime
    ) -> ValidationResult:
        """The verdict from ``totals`` (one row per pass over part of the data, added up) and
        the rows each side of the split received."""
        row = totals.select(pl.exclude(_NEWEST).sum(), pl.col(_NEWEST).max()).row(0, named=True)
        if row[_ROWS_BAD] != rows_quarantined:
            raise AssertionError(
                f"validation flagged {row[_ROWS_BAD]} bad rows but quarantined {rows_quarantined}"
            )
        return ValidationResult(
            contract=self.contract,
            check_counts={code: int(row[name]) for name, (code, _) in self.checks.items()},
            rows_in=int(row[_ROWS_IN]),
            rows_valid=rows_valid,
            rows_quarantined=rows_quarantined,
            extra_columns=self.extra_columns,
            missing_columns=self.missing_columns,
            newest=row[_NEWEST],
            checked_at=checked_at,
        )

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Data columns the contract does not declare, other than ``_`` metadata: not in valid."""
        declared = set(self.contract.column_names)
        return tuple(n for n in self.schema.names() if n not in declared and not n.startswith("_"))

    @property
    def missing_columns(self) -> tuple[str, ...]:
        return tuple(name for name in self.contract.column_names if name not in self.schema)

    def _newest(self) -> pl.Expr:
        """The latest parsed value of the freshness column, over every row (null if none)."""
        if self.contract.freshness is None:
            return pl.lit(None, dtype=_TARGET_DTYPES["timestamp"])
        name = self.contract.freshness.column
        return pl.col(next(c.typed_name for c in self.columns if c.spec.name == name)).max()


def compile_contract(contract: Contract, lazy: pl.LazyFrame) -> CompiledContract:
    """Compile ``contract`` against ``lazy``'s schema.

    ``unique`` checks are settled here, in a pass over just the unique columns that finds the
    duplicated values; the compiled flag is then a plain membership test, which a streaming
    query can evaluate chunk by chunk.
    """
    schema = lazy.collect_schema()
    require_columns(contract, schema.names())
    typed = [_typed_column(spec, schema.get(spec.name)) for spec in contract.columns]
    duplicated = _duplicated_values(
        lazy, {spec.name: expr for spec, expr in typed if spec.unique and spec.name in schema}
    )
    columns = tuple(
        _compile_column(spec, schema.get(spec.name), f"{_HELPER}typed:{index}", expr, duplicated)
        for index, (spec, expr) in enumerate(typed)
    )
    all_checks = [check for column in columns for check in column.checks]
    checks = {f"{_HELPER}check:{index}": check for index, check in enumerate(all_checks)}
    return CompiledContract(contract, schema, columns, checks)


def validate_frame(
    contract: Contract, frame: pl.DataFrame | pl.LazyFrame, *, now: datetime | None = None
) -> ValidationOutcome:
    """Split ``frame`` into contract-typed valid rows and raw quarantined rows with reasons.

    ``now`` is when the contract's freshness is judged (default: the current UTC time).
    """
    checked_at = now or datetime.now(UTC)
    lazy = frame.lazy()
    compiled = compile_contract(contract, lazy)
    # One query computes every flag; the split and the totals then read the flags.
    checked = compiled.checked(lazy).collect().lazy()
    valid, quarantine, totals = pl.collect_all(
        [compiled.valid_rows(checked), compiled.quarantined_rows(checked), compiled.totals(checked)]
    )
    result = compiled.result(totals, valid.height, quarantine.height, checked_at)
    return ValidationOutcome(
        contract=contract,
        valid=valid,
        quarantine=quarantine,
        check_counts=result.check_counts,
        rows_in=result.rows_in,
        extra_columns=result.extra_columns,
        missing_columns=result.missing_columns,
        newest=result.newest,
        checked_at=checked_at,
    )


def _duplicated_values(lazy: pl.LazyFrame, typed: dict[str, pl.Expr]) -> dict[str, pl.Series]:
    """Per unique column, the non-null typed values that occur more than once.

    Sorting 64-bit hashes finds the repeated ones at a fraction of the cost of grouping the
    values themselves; only the few values behind a repeated hash are then compared exactly
    (different values can share a hash, so a repeated hash alone proves nothing).
    """
    names = list(typed)
    hashes = pl.collect_all(
        [
            lazy.select(expr.alias(_VALUE))
            .filter(pl.col(_VALUE).is_not_null())
            .select(pl.col(_VALUE).hash().alias(_HASH))
            .sort(_HASH)
            .filter(pl.col(_HASH) == pl.col(_HASH).shift(1))
            .unique()
            for expr in typed.values()
        ],
        # Streaming: the values are hashed chunk by chunk, only the hashes are held.
        engine="streaming",
    )
    found = zip(names, hashes, strict=True)
    repeated = {name: frame[_HASH] for name, frame in found if frame.height}
    values = pl.collect_all(
        [
            lazy.select(typed[name].alias(_VALUE))
            .filter(pl.col(_VALUE).is_not_null() & pl.col(_VALUE).hash().is_in(found.implode()))
            .filter(pl.col(_VALUE).is_duplicated())
            .unique()
            for name, found in repeated.items()
        ]
    )
    return {name: frame[_VALUE] for name, frame in zip(repeated, values, strict=True)}


def _typed_column(spec: ColumnSpec, dtype: pl.DataType | None) -> tuple[ColumnSpec, pl.Expr]:
    if dtype is None:
        return spec, pl.lit(None, dtype=_TARGET_DTYPES[spec.type])
    return spec, _typed_value(spec, dtype)


def _compile_column(
    spec: ColumnSpec,
    dtype: pl.DataType | None,
    typed_name: str,
    typed_value: pl.Expr,
    duplicated: dict[str, pl.Series],
) -> _CompiledColumn:
    if dtype is None:
        # An optional column absent from the data is all-null, so none of its checks can fail.
        checks = tuple((f"{spec.name}:{check}", pl.lit(False)) for check in spec.check_names)
        return _CompiledColumn(spec, typed_name, typed_value, checks)
    target = _TARGET_DTYPES[spec.type]
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
        repeated = duplicated.get(spec.name)
        is_repeated = pl.lit(False) if repeated is None else typed.is_in(repeated.implode())
        failed["unique"] = typed.is_not_null() & is_repeated.fill_null(False)
    if spec.pattern is not None:
        failed["pattern"] = (~typed.str.contains(_checked_pattern(spec))).fill_null(False)
    checks = tuple((f"{spec.name}:{check}", failed[check]) for check in spec.check_names)
    return _CompiledColumn(spec, typed_name, typed_value, checks)


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
