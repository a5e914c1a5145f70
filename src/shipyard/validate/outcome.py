"""What validating one dataset against a contract produced: the split and its counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from shipyard.core.errors import DataError
from shipyard.validate.contract import Contract

# Quarantined rows carry their failed checks in this column, e.g. ["amount:min"].
REASON_CODES = "reason_codes"


def require_columns(contract: Contract, columns: list[str]) -> None:
    """Refuse data lacking a required column, or already holding the reason-code column.

    Every engine calls this first, so both refuse the same data with the same words.
    """
    missing = [c.name for c in contract.columns if c.required and c.name not in columns]
    if missing:
        raise DataError(
            f"data lacks required column(s) {', '.join(map(repr, missing))} of contract "
            f"{contract.name!r} v{contract.version}; it has: {', '.join(columns)}"
        )
    if REASON_CODES in columns:
        raise DataError(
            f"data has a column named {REASON_CODES!r}, which validation adds to quarantined "
            "rows; rename or drop it before validating"
        )


@dataclass(frozen=True)
class DatasetCheck:
    """A batch-level check: what was observed, what the contract expects, and the verdict."""

    passed: bool
    observed: float | None
    expected: str


@dataclass(frozen=True, eq=False)
class ValidationResult:
    """The counts and verdict of validating a dataset, without the rows themselves.

    What an engine that writes the split straight to files returns. ``check_counts`` maps every
    compiled check code (``"amount:min"``) to its failing rows, zeros included.
    ``dataset_checks`` holds the batch-level checks (``bad_row_share``, ``row_count`` and, when
    the contract declares it, ``freshness``); ``passed`` is the AND of them and
    ``reasons_failed`` explains each failure in a sentence.

    Engines pass ``newest``, the latest parsed value of the contract's freshness column (None
    when there is none), and ``checked_at``, the time freshness is judged at (default: now).
    ``missing_columns`` are optional contract columns absent from the data.
    """

    contract: Contract
    check_counts: dict[str, int]
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    extra_columns: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    newest: datetime | None = None
    checked_at: datetime | None = None
    bad_row_share: float = field(init=False)
    passed: bool = field(init=False)
    reasons_failed: list[str] = field(init=False)
    dataset_checks: dict[str, DatasetCheck] = field(init=False)

    def __post_init__(self) -> None:
        rows_valid, rows_quarantined = self.rows_valid, self.rows_quarantined
        if rows_valid + rows_quarantined != self.rows_in:
            # Every row must land in exactly one side; anything else is a bug in the engine.
            raise AssertionError(
                f"validation lost or duplicated rows: {rows_valid} valid + "
                f"{rows_quarantined} quarantined != {self.rows_in} in"
            )
        share = rows_quarantined / self.rows_in if self.rows_in else 0.0
        checked_at = _as_utc(self.checked_at or datetime.now(UTC))
        newest = None if self.newest is None else _as_utc(self.newest)
        checks, reasons = _dataset_checks(
            self.contract, self.rows_in, rows_quarantined, share, newest, checked_at
        )
        # A frozen dataclass computes its derived fields through object.__setattr__.
        object.__setattr__(self, "checked_at", checked_at)
        object.__setattr__(self, "bad_row_share", share)
        object.__setattr__(self, "passed", all(check.passed for check in checks.values()))
        object.__setattr__(self, "reasons_failed", reasons)
        object.__setattr__(self, "dataset_checks", checks)

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: rows, share, verdict, and failures keyed by column then check."""
        checks: dict[str, dict[str, int]] = {}
        for code, count in self.check_counts.items():
            column, _, check = code.rpartition(":")
            checks.setdefault(column, {})[check] = count
        return {
            "contract": self.contract.name,
            "contract_version": self.contract.version,
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "bad_row_share": self.bad_row_share,
            "max_bad_row_share": self.contract.max_bad_row_share,
            "passed": self.passed,
            "reasons_failed": list(self.reasons_failed),
            "checks": checks,
            "extra_columns": list(self.extra_columns),
        }


@dataclass(frozen=True, eq=False)
class ValidationOutcome:
    """A ``ValidationResult`` with its rows in memory: valid rows typed per contract, quarantined
    raw rows with reason codes. Its counts are the frames' heights.
    """

    contract: Contract
    valid: pl.DataFrame
    quarantine: pl.DataFrame
    check_counts: dict[str, int]
    rows_in: int
    extra_columns: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    newest: datetime | None = None
    checked_at: datetime | None = None
    result: ValidationResult = field(init=False)

    def __post_init__(self) -> None:
        result = ValidationResult(
            contract=self.contract,
            check_counts=self.check_counts,
            rows_in=self.rows_in,
            rows_valid=self.valid.height,
            rows_quarantined=self.quarantine.height,
            extra_columns=self.extra_columns,
            missing_columns=self.missing_columns,
            newest=self.newest,
            checked_at=self.checked_at,
        )
        object.__setattr__(self, "result", result)
        object.__setattr__(self, "checked_at", result.checked_at)

    @property
    def rows_valid(self) -> int:
        return self.result.rows_valid

    @property
    def rows_quarantined(self) -> int:
        return self.result.rows_quarantined

    @property
    def bad_row_share(self) -> float:
        return self.result.bad_row_share

    @property
    def passed(self) -> bool:
        return self.result.passed

    @property
    def reasons_failed(self) -> list[str]:
        return self.result.reasons_failed

    @property
    def dataset_checks(self) -> dict[str, DatasetCheck]:
        return self.result.dataset_checks

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: rows, share, verdict, and failures keyed by column then check."""
        return self.result.summary()


def _dataset_checks(
    contract: Contract,
    rows_in: int,
    rows_bad: int,
    share: float,
    newest: datetime | None,
    checked_at: datetime,
) -> tuple[dict[str, DatasetCheck], list[str]]:
    """Every batch-level check, and one sentence per failed one (in check order)."""
    checks: dict[str, DatasetCheck] = {}
    reasons: list[str] = []
    limit = contract.max_bad_row_share
    checks["bad_row_share"] = DatasetCheck(share <= limit, share, f"<= {limit:g}")
    if share > limit:
        reasons.append(
            f"bad row share {share:.4f} ({rows_bad} of {rows_in} rows quarantined) "
            f"exceeds max_bad_row_share {limit}"
        )
    low, high = contract.min_rows, contract.max_rows
    expected = f">= {low}" if high is None else f"between {low} and {high}"
    is_too_few, is_too_many = rows_in < low, high is not None and rows_in > high
    checks["row_count"] = DatasetCheck(not (is_too_few or is_too_many), rows_in, expected)
    if is_too_few:
        reasons.append(f"{rows_in} rows in, fewer than min_rows {low}")
    if is_too_many:
        reasons.append(f"{rows_in} rows in, more than max_rows {high}")
    if contract.freshness is not None:
        column, max_age = contract.freshness.column, contract.freshness.max_age_hours
        age = None if newest is None else (checked_at - newest).total_seconds() / 3600
        is_fresh = age is not None and age <= max_age
        checks["freshness"] = DatasetCheck(is_fresh, age, f"<= {max_age:g} h")
        if age is None:
            reasons.append(f"no {column} value to judge freshness by (max_age_hours {max_age:g})")
        elif not is_fresh:
            # A sensitive column's values stay out of reports, even its newest one.
            shown = "" if contract.column(column).sensitive else f" {newest:%Y-%m-%dT%H:%M:%SZ}"
            reasons.append(
                f"newest {column}{shown} is {age:.1f} h old at "
                f"{checked_at:%Y-%m-%dT%H:%M:%SZ}, older than max_age_hours {max_age:g}"
            )
    return checks, reasons


def _as_utc(moment: datetime) -> datetime:
    """Naive times are taken to be UTC, as the contract's timestamps are."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
