"""What validating one dataset against a contract produced: the split and its counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from shipyard.validate.contract import Contract

# Quarantined rows carry their failed checks in this column, e.g. ["amount:min"].
REASON_CODES = "reason_codes"


@dataclass(frozen=True, eq=False)
class ValidationOutcome:
    """Valid rows typed per contract, quarantined raw rows with reason codes, and the verdict.

    ``check_counts`` maps every compiled check code (``"amount:min"``) to its failing rows, zeros
    included. ``passed`` is False when too many rows were bad or too few rows came in;
    ``reasons_failed`` says which.
    """

    contract: Contract
    valid: pl.DataFrame
    quarantine: pl.DataFrame
    check_counts: dict[str, int]
    rows_in: int
    extra_columns: tuple[str, ...] = ()
    rows_valid: int = field(init=False)
    rows_quarantined: int = field(init=False)
    bad_row_share: float = field(init=False)
    passed: bool = field(init=False)
    reasons_failed: list[str] = field(init=False)

    def __post_init__(self) -> None:
        rows_valid, rows_quarantined = self.valid.height, self.quarantine.height
        if rows_valid + rows_quarantined != self.rows_in:
            # Every row must land in exactly one side; anything else is a bug in the engine.
            raise AssertionError(
                f"validation lost or duplicated rows: {rows_valid} valid + "
                f"{rows_quarantined} quarantined != {self.rows_in} in"
            )
        share = rows_quarantined / self.rows_in if self.rows_in else 0.0
        reasons = _reasons_failed(self.contract, self.rows_in, rows_quarantined, share)
        # A frozen dataclass computes its derived fields through object.__setattr__.
        object.__setattr__(self, "rows_valid", rows_valid)
        object.__setattr__(self, "rows_quarantined", rows_quarantined)
        object.__setattr__(self, "bad_row_share", share)
        object.__setattr__(self, "passed", not reasons)
        object.__setattr__(self, "reasons_failed", reasons)

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


def _reasons_failed(contract: Contract, rows_in: int, rows_bad: int, share: float) -> list[str]:
    reasons = []
    if share > contract.max_bad_row_share:
        reasons.append(
            f"bad row share {share:.4f} ({rows_bad} of {rows_in} rows quarantined) "
            f"exceeds max_bad_row_share {contract.max_bad_row_share}"
        )
    if rows_in < contract.min_rows:
        reasons.append(f"{rows_in} rows in, fewer than min_rows {contract.min_rows}")
    return reasons
