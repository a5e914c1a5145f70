from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from shipyard.core.errors import ContractError
from shipyard.validate import ColumnSpec, Contract, DatasetCheck, Freshness, validate_frame
from shipyard.validate.contract import load_contract

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 2, 12, tzinfo=UTC)


def contract(*columns: ColumnSpec, **fields: object) -> Contract:
    return Contract(name="t", version="1", columns=columns, **fields)  # type: ignore[arg-type]


def reasons(frame: pl.DataFrame) -> list[list[str]]:
    return [list(codes) for codes in frame["reason_codes"].to_list()]


def test_unique_fails_every_occurrence_of_a_duplicated_value() -> None:
    spec = ColumnSpec(name="id", type="string", unique=True)
    frame = pl.DataFrame({"id": ["a", "b", "a", None, None, "c", "b", "b"]})

    outcome = validate_frame(contract(spec), frame)

    assert outcome.valid["id"].to_list() == [None, None, "c"]
    assert outcome.quarantine["id"].to_list() == ["a", "b", "a", "b", "b"]
    assert set(map(tuple, reasons(outcome.quarantine))) == {("id:unique",)}
    assert outcome.check_counts == {"id:type": 0, "id:unique": 5}


def test_unique_compares_typed_values() -> None:
    spec = ColumnSpec(name="n", type="int", unique=True)

    outcome = validate_frame(contract(spec), pl.DataFrame({"n": ["1", "01", "2"]}))

    assert outcome.valid["n"].to_list() == [2]
    assert reasons(outcome.quarantine) == [["n:unique"], ["n:unique"]]


def test_pattern_must_match_the_whole_value() -> None:
    spec = ColumnSpec(name="id", type="string", required=True, pattern="evt-[0-9a-f]{4}")
    frame = pl.DataFrame({"id": ["evt-00af", "evt-00afx", "xevt-00af", "EVT-00AF", None]})

    outcome = validate_frame(contract(spec), frame)

    assert outcome.valid["id"].to_list() == ["evt-00af"]
    assert reasons(outcome.quarantine) == [
        ["id:pattern"], ["id:pattern"], ["id:pattern"], ["id:not_null"]
    ]  # fmt: skip


def test_pattern_alternatives_are_anchored_as_a_group() -> None:
    spec = ColumnSpec(name="c", type="string", pattern="a|b")

    outcome = validate_frame(contract(spec), pl.DataFrame({"c": ["a", "b", "ab", "xa"]}))

    assert outcome.valid["c"].to_list() == ["a", "b"]


def test_row_count_bounds() -> None:
    spec = ColumnSpec(name="a", type="int")
    frame = pl.DataFrame({"a": [1, 2, 3]})

    inside = validate_frame(contract(spec, min_rows=3, max_rows=3), frame)
    too_many = validate_frame(contract(spec, max_rows=2), frame)

    assert inside.passed
    assert inside.dataset_checks["row_count"] == DatasetCheck(True, 3, "between 3 and 3")
    assert not too_many.passed
    assert too_many.dataset_checks["row_count"] == DatasetCheck(False, 3, "between 0 and 2")
    assert too_many.reasons_failed == ["3 rows in, more than max_rows 2"]
    # Row-level results are unaffected: the batch fails, not its rows.
    assert too_many.rows_valid == 3


def test_freshness_judges_the_newest_timestamp_at_now() -> None:
    spec = ColumnSpec(name="at", type="timestamp")
    fresh = contract(spec, freshness=Freshness(column="at", max_age_hours=24))
    frame = pl.DataFrame({"at": [dt.datetime(2026, 11, 1, 6), dt.datetime(2026, 11, 1, 12)]})

    at_limit = validate_frame(fresh, frame, now=NOW)
    later = validate_frame(fresh, frame, now=NOW + dt.timedelta(hours=6))

    assert at_limit.passed
    assert at_limit.dataset_checks["freshness"] == DatasetCheck(True, 24.0, "<= 24 h")
    assert not later.passed
    assert later.dataset_checks["freshness"] == DatasetCheck(False, 30.0, "<= 24 h")
    assert later.reasons_failed == [
        "newest at 2026-11-01T12:00:00Z is 30.0 h old at 2026-11-02T18:00:00Z, "
        "older than max_age_hours 24"
    ]


def test_freshness_with_no_timestamps_fails() -> None:
    spec = ColumnSpec(name="at", type="timestamp")
    fresh = contract(spec, freshness=Freshness(column="at", max_age_hours=1))

    outcome = validate_frame(fresh, pl.DataFrame(schema={"at": pl.Datetime("ms")}), now=NOW)

    assert outcome.dataset_checks["freshness"] == DatasetCheck(False, None, "<= 1 h")
    assert outcome.reasons_failed == ["no at value to judge freshness by (max_age_hours 1)"]


def test_dataset_checks_are_anded_and_each_failure_explained() -> None:
    spec = ColumnSpec(name="a", type="int", min=0)
    strict = contract(spec, max_bad_row_share=0.1, min_rows=5)

    outcome = validate_frame(strict, pl.DataFrame({"a": [-1, 1]}))

    assert list(outcome.dataset_checks) == ["bad_row_share", "row_count"]
    assert [c.passed for c in outcome.dataset_checks.values()] == [False, False]
    assert len(outcome.reasons_failed) == 2
    assert not outcome.passed


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("columns:\n  - {name: a, type: int, pattern: 'x'}",
         r"columns\[0\]\.pattern: pattern applies to string columns, not int"),
        ("columns:\n  - {name: a, type: string, pattern: '(unclosed'}",
         r"columns\[0\]\.pattern: pattern '\(unclosed' is not a valid regex: missing \)"),
        ("columns:\n  - {name: a, type: string, unique: maybe}",
         r"columns\[0\]\.unique: Input should be a valid boolean"),
        ("max_rows: 0\ncolumns:\n  - {name: a, type: int}",
         r"max_rows: max_rows must be >= 1 and >= min_rows \(0\), got 0"),
        ("min_rows: 5\nmax_rows: 2\ncolumns:\n  - {name: a, type: int}",
         r"max_rows: max_rows must be >= 1 and >= min_rows \(5\), got 2"),
        ("freshness: {column: b, max_age_hours: 1}\ncolumns:\n  - {name: a, type: timestamp}",
         r"freshness: column 'b' is not declared in the contract"),
        ("freshness: {column: a, max_age_hours: 1}\ncolumns:\n  - {name: a, type: string}",
         r"freshness: column 'a' is string; freshness needs a timestamp column"),
        ("freshness: {column: a, max_age_hours: 0}\ncolumns:\n  - {name: a, type: timestamp}",
         r"freshness\.max_age_hours: max_age_hours must be a positive number, got 0"),
        ("freshness: {column: a}\ncolumns:\n  - {name: a, type: timestamp}",
         r"freshness\.max_age_hours: Field required"),
    ],
)  # fmt: skip
def test_new_fields_are_checked_naming_file_and_field(
    tmp_path: Path, yaml_text: str, expected: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"name: c\nversion: 1\n{yaml_text}\n", encoding="utf-8")

    with pytest.raises(ContractError, match=f"^{path}: {expected}"):
        load_contract(path)


def test_a_regex_polars_cannot_run_is_a_contract_error() -> None:
    spec = ColumnSpec(name="a", type="string", pattern="(?=x)x")

    with pytest.raises(ContractError, match="column 'a': pattern .* look-around"):
        validate_frame(contract(spec), pl.DataFrame({"a": ["x"]}))


def test_new_fields_round_trip() -> None:
    original = contract(
        ColumnSpec(name="id", type="string", unique=True, pattern="[a-z]+"),
        ColumnSpec(name="at", type="timestamp"),
        max_rows=10,
        freshness=Freshness(column="at", max_age_hours=1.5),
    )

    assert Contract.from_dict(original.to_dict()) == original


def test_packaged_fraud_contract_declares_keys_and_patterns() -> None:
    from shipyard.validate import packaged_contract

    fraud = packaged_contract("fraud")

    assert fraud.column("event_id").unique
    assert fraud.column("event_id").pattern == "evt-[0-9a-f]{16}"
    assert fraud.column("card_id").pattern == "card-[0-9]{7}"
    assert fraud.column("merchant_id").pattern == "m-[0-9]{5}"
