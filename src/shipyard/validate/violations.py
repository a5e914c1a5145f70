"""Failed checks as SageMaker Model Monitor's ``constraint_violations.json``.

Model Monitor knows six check types; each of our checks is reported as the closest one, and the
description always starts with our own check code so nothing is lost in the mapping:

=================  ============================  ================================================
our check          ``constraint_check_type``     why
=================  ============================  ================================================
``not_null``       ``completeness_check``        a required value is missing
``type``           ``data_type_check``           the value does not parse as the declared type
``allowed``        ``categorical_values_check``  a value outside the declared domain
``pattern``        ``categorical_values_check``  a string outside the declared (regex) domain
``min``, ``max``   ``data_type_check``           Model Monitor's numeric constraints
                                                 (``is_non_negative``) belong to the type
``unique``         ``data_type_check``           a key constraint of the column
absent column      ``missing_column_check``      an optional contract column is not in the data
undeclared column  ``extra_column_check``        the data has a column the contract lacks
``row_count``      ``completeness_check``        the batch has too few or too many rows
``bad_row_share``  ``completeness_check``        too few rows are complete and valid
``freshness``      ``baseline_drift_check``      the batch's time window moved out of range
=================  ============================  ================================================
"""

from __future__ import annotations

from typing import Any

from shipyard.validate.contract import Contract
from shipyard.validate.outcome import ValidationOutcome, ValidationResult

VIOLATIONS_FILE = "constraint_violations.json"
# Batch-level checks concern no single feature.
DATASET_FEATURE = "(dataset)"

CHECK_TYPES = {
    "not_null": "completeness_check",
    "type": "data_type_check",
    "allowed": "categorical_values_check",
    "pattern": "categorical_values_check",
    "min": "data_type_check",
    "max": "data_type_check",
    "unique": "data_type_check",
    "row_count": "completeness_check",
    "bad_row_share": "completeness_check",
    "freshness": "baseline_drift_check",
}

_ROW_CHECK_MEANING = {
    "not_null": "have no value in a required column",
    "type": "do not parse as the declared type",
    "allowed": "hold a value outside the allowed list",
    "pattern": "do not match the declared pattern",
    "min": "are below the declared min (a range check)",
    "max": "are above the declared max (a range check)",
    "unique": "repeat a value that must be unique (a uniqueness check)",
}


def constraint_violations(outcome: ValidationResult | ValidationOutcome) -> dict[str, Any]:
    """``{"violations": [...]}`` for every failed check; an empty list when all passed."""
    violations = []
    for code, count in outcome.check_counts.items():
        if not count:
            continue
        column, _, check = code.rpartition(":")
        detail = _column_detail(outcome.contract, column, check)
        share = count / outcome.rows_in
        violations.append(
            _violation(
                column,
                CHECK_TYPES.get(check, "data_type_check"),
                f"{code}: {count} of {outcome.rows_in} rows ({share:.2%}) "
                f"{_ROW_CHECK_MEANING.get(check, 'failed')}{detail}",
            )
        )
    for column in outcome.missing_columns:
        violations.append(
            _violation(
                column,
                "missing_column_check",
                f"{column}:missing: contract column is absent from the data (read as all null)",
            )
        )
    for column in outcome.extra_columns:
        violations.append(
            _violation(
                column,
                "extra_column_check",
                f"{column}:extra: the data has this column but the contract does not declare it",
            )
        )
    failed_sentences = iter(outcome.reasons_failed)
    for name, dataset_check in outcome.dataset_checks.items():
        if dataset_check.passed:
            continue
        feature = (
            outcome.contract.freshness.column
            if name == "freshness" and outcome.contract.freshness is not None
            else DATASET_FEATURE
        )
        violations.append(
            _violation(feature, CHECK_TYPES[name], f"{name}: {next(failed_sentences, '')}")
        )
    return {"violations": violations}


def _column_detail(contract: Contract, column: str, check: str) -> str:
    spec = next((c for c in contract.columns if c.name == column), None)
    if spec is None:
        return ""
    if check == "min":
        return f" {spec.min:g}"
    if check == "max":
        return f" {spec.max:g}"
    if check == "pattern":
        return f" {spec.pattern}"
    if check == "type":
        return f" ({spec.type})"
    return ""


def _violation(feature: str, check_type: str, description: str) -> dict[str, str]:
    return {
        "feature_name": feature,
        "constraint_check_type": check_type,
        "description": description,
    }
