"""Validate layer: a declared data contract, compiled to an engine, splits data into
curated (valid) and quarantined rows with reason codes."""

from __future__ import annotations

from shipyard.validate.contract import ColumnSpec, Contract, load_contract, packaged_contract
from shipyard.validate.outcome import ValidationOutcome
from shipyard.validate.polars_engine import validate_frame

__all__ = [
    "ColumnSpec",
    "Contract",
    "ValidationOutcome",
    "load_contract",
    "packaged_contract",
    "validate_frame",
]
