from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from shipyard.validate import (
    ColumnSpec,
    Contract,
    ValidationOutcome,
    ValidationResult,
    validate_frame,
)
from shipyard.validate.polars_engine import compile_contract


def small_contract() -> Contract:
    return Contract(
        name="t",
        version="2",
        columns=(
            ColumnSpec(name="id", type="string", required=True),
            ColumnSpec(name="amount", type="float", min=0, max=10),
        ),
        max_bad_row_share=0.5,
    )


def test_summary_is_json_ready_and_keyed_by_column_then_check() -> None:
    frame = pl.DataFrame({"id": ["a", None, "c"], "amount": [1.0, 2.0, 11.0], "junk": [0, 0, 0]})

    summary = validate_frame(small_contract(), frame).summary()

    assert json.loads(json.dumps(summary)) == summary
    assert summary == {
        "contract": "t",
        "contract_version": "2",
        "rows_in": 3,
        "rows_valid": 1,
        "rows_quarantined": 2,
        "bad_row_share": pytest.approx(2 / 3),
        "max_bad_row_share": 0.5,
        "passed": False,
        "reasons_failed": [
            "bad row share 0.6667 (2 of 3 rows quarantined) exceeds max_bad_row_share 0.5"
        ],
        "checks": {
            "id": {"not_null": 1, "type": 0},
            "amount": {"type": 0, "min": 0, "max": 1},
        },
        "extra_columns": ["junk"],
    }


def test_invariant_rejects_an_outcome_that_loses_rows() -> None:
    valid = pl.DataFrame({"id": ["a"]})
    quarantine = pl.DataFrame({"id": ["b"], "reason_codes": [["id:type"]]})

    with pytest.raises(AssertionError, match=r"1 valid \+ 1 quarantined != 3 in"):
        ValidationOutcome(
            contract=small_contract(),
            valid=valid,
            quarantine=quarantine,
            check_counts={},
            rows_in=3,
        )


def test_derived_fields_follow_the_frames() -> None:
    outcome = ValidationOutcome(
        contract=small_contract(),
        valid=pl.DataFrame({"id": ["a", "b", "c"]}),
        quarantine=pl.DataFrame({"id": ["d"], "reason_codes": [["id:type"]]}),
        check_counts={"id:type": 1},
        rows_in=4,
    )

    assert (outcome.rows_valid, outcome.rows_quarantined) == (3, 1)
    assert outcome.bad_row_share == 0.25
    assert outcome.passed
    assert outcome.reasons_failed == []


def test_a_result_whose_files_lost_rows_is_refused() -> None:
    with pytest.raises(AssertionError, match=r"4 valid \+ 0 quarantined != 5 in"):
        ValidationResult(
            contract=small_contract(),
            check_counts={},
            rows_in=5,
            rows_valid=4,
            rows_quarantined=0,
        )


def test_a_quarantine_that_misses_flagged_rows_is_refused() -> None:
    frame = pl.LazyFrame({"id": ["a", None, "c"], "amount": [1.0, 2.0, 11.0]})
    compiled = compile_contract(small_contract(), frame)
    totals = compiled.totals(compiled.checked(frame)).collect()

    with pytest.raises(AssertionError, match="flagged 2 bad rows but quarantined 1"):
        compiled.result(totals, rows_valid=2, rows_quarantined=1, checked_at=dt.datetime.now())
