"""Validate layer: a declared data contract, compiled to an engine, splits data into
curated (valid) and quarantined rows with reason codes, and reports on the split."""

from __future__ import annotations

from shipyard.validate.baseline import (
    Baseline,
    contract_from_baseline,
    infer_baseline,
    write_baseline,
)
from shipyard.validate.contract import (
    ColumnSpec,
    Contract,
    Freshness,
    load_contract,
    packaged_contract,
)
from shipyard.validate.landing import landing_schema
from shipyard.validate.outcome import DatasetCheck, ValidationOutcome, ValidationResult
from shipyard.validate.polars_engine import validate_frame
from shipyard.validate.polars_stream import WrittenSplit, validate_to_parquet
from shipyard.validate.report import build_report, render_html
from shipyard.validate.violations import constraint_violations

__all__ = [
    "Baseline",
    "ColumnSpec",
    "Contract",
    "DatasetCheck",
    "Freshness",
    "ValidationOutcome",
    "ValidationResult",
    "WrittenSplit",
    "build_report",
    "constraint_violations",
    "contract_from_baseline",
    "infer_baseline",
    "landing_schema",
    "load_contract",
    "packaged_contract",
    "render_html",
    "validate_frame",
    "validate_to_parquet",
    "write_baseline",
]
