from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from shipyard.core.errors import DataError
from shipyard.validate import ColumnSpec, Contract, validate_frame

UTC = dt.UTC
ISO_MS = "%Y-%m-%dT%H:%M:%S%.3fZ"


def contract(*columns: ColumnSpec, share: float = 1.0, min_rows: int = 0) -> Contract:
    return Contract(
        name="t", version="1", columns=columns, max_bad_row_share=share, min_rows=min_rows
    )


def reasons(frame: pl.DataFrame) -> list[list[str]]:
    return [list(codes) for codes in frame["reason_codes"].to_list()]


def test_not_null_quarantines_missing_required_values() -> None:
    spec = ColumnSpec(name="id", type="string", required=True)
    frame = pl.DataFrame({"id": ["a", None, "c"]})

    outcome = validate_frame(contract(spec), frame)

    assert outcome.valid["id"].to_list() == ["a", "c"]
    assert outcome.quarantine["id"].to_list() == [None]
    assert reasons(outcome.quarantine) == [["id:not_null"]]
    assert outcome.check_counts == {"id:not_null": 1, "id:type": 0}


def test_optional_nulls_are_valid() -> None:
    spec = ColumnSpec(name="n", type="int", min=0)

    outcome = validate_frame(contract(spec), pl.DataFrame({"n": [None, 1]}, schema={"n": pl.Int64}))

    assert outcome.valid["n"].to_list() == [None, 1]
    assert outcome.rows_quarantined == 0
    assert outcome.check_counts == {"n:type": 0, "n:min": 0}


def test_min_and_max_are_inclusive_bounds() -> None:
    spec = ColumnSpec(name="x", type="float", min=0, max=1)
    frame = pl.DataFrame({"x": [-0.1, 0.0, 0.5, 1.0, 1.1]})

    outcome = validate_frame(contract(spec), frame)

    assert outcome.valid["x"].to_list() == [0.0, 0.5, 1.0]
    assert outcome.quarantine["x"].to_list() == [-0.1, 1.1]
    assert reasons(outcome.quarantine) == [["x:min"], ["x:max"]]
    assert outcome.check_counts == {"x:type": 0, "x:min": 1, "x:max": 1}


def test_allowed_quarantines_values_outside_the_domain() -> None:
    spec = ColumnSpec(name="channel", type="string", required=True, allowed=("pos", "ecom"))
    frame = pl.DataFrame({"channel": ["pos", "fax", "ecom", "POS"]})

    outcome = validate_frame(contract(spec), frame)

    assert outcome.valid["channel"].to_list() == ["pos", "ecom"]
    assert outcome.quarantine["channel"].to_list() == ["fax", "POS"]
    assert reasons(outcome.quarantine) == [["channel:allowed"], ["channel:allowed"]]


def test_type_flags_text_that_does_not_parse() -> None:
    specs = (
        ColumnSpec(name="i", type="int"),
        ColumnSpec(name="f", type="float"),
        ColumnSpec(name="b", type="bool"),
        ColumnSpec(name="t", type="timestamp", timestamp_format=ISO_MS),
    )
    frame = pl.DataFrame(
        {
            "i": ["1", "1.5", "x", None],
            "f": ["2.5", "abc", "1e3", None],
            "b": ["true", "False", "maybe", None],
            "t": [
                "2026-11-01T00:00:00.123Z",
                "2026-11-01T00:00:00.123Z",
                "x",
                "2026-11-01 25:61:00",
            ],
        }
    )

    outcome = validate_frame(contract(*specs), frame)

    assert outcome.valid.to_dicts() == [
        {"i": 1, "f": 2.5, "b": True, "t": dt.datetime(2026, 11, 1, 0, 0, 0, 123000, tzinfo=UTC)}
    ]
    assert reasons(outcome.quarantine) == [
        ["i:type", "f:type"],
        ["i:type", "b:type", "t:type"],
        ["t:type"],
    ]
    assert outcome.check_counts == {"i:type": 2, "f:type": 1, "b:type": 1, "t:type": 2}


def test_json_like_string_columns_are_typed_per_contract() -> None:
    specs = (
        ColumnSpec(name="s", type="string"),
        ColumnSpec(name="i", type="int"),
        ColumnSpec(name="f", type="float"),
        ColumnSpec(name="b", type="bool"),
        ColumnSpec(name="t", type="timestamp", timestamp_format=ISO_MS),
    )
    frame = pl.DataFrame(
        {"s": ["x"], "i": ["7"], "f": ["0.25"], "b": ["1"], "t": ["2026-01-02T03:04:05.006Z"]}
    )

    outcome = validate_frame(contract(*specs), frame)

    assert outcome.valid.schema == pl.Schema(
        {
            "s": pl.String(),
            "i": pl.Int64(),
            "f": pl.Float64(),
            "b": pl.Boolean(),
            "t": pl.Datetime("ms", "UTC"),
        }
    )
    assert outcome.valid.row(0) == (
        "x",
        7,
        0.25,
        True,
        dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
    )


def test_native_types_are_widened_to_the_contract_types() -> None:
    specs = (
        ColumnSpec(name="i", type="int"),
        ColumnSpec(name="f", type="float"),
        ColumnSpec(name="t", type="timestamp"),
        ColumnSpec(name="d", type="timestamp"),
        ColumnSpec(name="s", type="string"),
    )
    frame = pl.DataFrame(
        {
            "i": pl.Series([3], dtype=pl.Int8),
            "f": pl.Series([1.5], dtype=pl.Float32),
            "t": pl.Series([dt.datetime(2026, 1, 1, 12)]).dt.replace_time_zone("Europe/Paris"),
            "d": [dt.date(2026, 1, 1)],
            "s": pl.Series(["a"], dtype=pl.Categorical),
        }
    )

    outcome = validate_frame(contract(*specs), frame)

    assert outcome.rows_valid == 1
    assert outcome.valid.schema["t"] == pl.Datetime("ms", "UTC")
    assert outcome.valid.row(0) == (
        3,
        1.5,
        dt.datetime(2026, 1, 1, 11, tzinfo=UTC),
        dt.datetime(2026, 1, 1, tzinfo=UTC),
        "a",
    )


def test_naive_datetimes_are_read_as_utc() -> None:
    spec = ColumnSpec(name="t", type="timestamp")

    outcome = validate_frame(contract(spec), pl.DataFrame({"t": [dt.datetime(2026, 1, 1, 8)]}))

    assert outcome.valid["t"].to_list() == [dt.datetime(2026, 1, 1, 8, tzinfo=UTC)]


def test_floats_with_a_fraction_are_not_ints() -> None:
    spec = ColumnSpec(name="n", type="int")
    frame = pl.DataFrame({"n": [1.0, 2.5, float("inf"), None]})

    outcome = validate_frame(contract(spec), frame)

    assert outcome.valid["n"].to_list() == [1, None]
    assert outcome.quarantine["n"].to_list() == [2.5, float("inf")]
    assert outcome.check_counts == {"n:type": 2}


def test_ints_outside_int64_are_type_failures() -> None:
    spec = ColumnSpec(name="n", type="int")
    frame = pl.DataFrame({"n": pl.Series([1, 2**63], dtype=pl.UInt64)})

    outcome = validate_frame(contract(spec), frame)

    assert reasons(outcome.quarantine) == [["n:type"]]


def test_numeric_bools_must_be_zero_or_one() -> None:
    spec = ColumnSpec(name="b", type="bool")

    outcome = validate_frame(contract(spec), pl.DataFrame({"b": [0, 1, 2]}))

    assert outcome.valid["b"].to_list() == [False, True]
    assert reasons(outcome.quarantine) == [["b:type"]]


def test_nan_counts_as_missing() -> None:
    specs = (
        ColumnSpec(name="req", type="float", required=True),
        ColumnSpec(name="opt", type="float"),
    )
    frame = pl.DataFrame({"req": [float("nan"), 1.0], "opt": [1.0, float("nan")]})

    outcome = validate_frame(contract(*specs), frame)

    assert reasons(outcome.quarantine) == [["req:not_null"]]
    assert outcome.valid.row(0) == (1.0, None)


def test_value_checks_ignore_values_that_failed_their_type_check() -> None:
    spec = ColumnSpec(name="amount", type="float", required=True, min=0)

    outcome = validate_frame(contract(spec), pl.DataFrame({"amount": ["abc", None, "-1"]}))

    assert reasons(outcome.quarantine) == [["amount:type"], ["amount:not_null"], ["amount:min"]]


def test_multi_failure_rows_carry_every_reason_in_contract_order() -> None:
    specs = (
        ColumnSpec(name="id", type="string", required=True),
        ColumnSpec(name="amount", type="float", required=True, min=0),
        ColumnSpec(name="channel", type="string", allowed=("pos",)),
        ColumnSpec(name="at", type="timestamp", required=True, timestamp_format=ISO_MS),
    )
    frame = pl.DataFrame(
        {"id": [None, "b"], "amount": [-1.0, 2.0], "channel": ["fax", "pos"], "at": ["x", None]}
    )

    outcome = validate_frame(contract(*specs), frame)

    assert reasons(outcome.quarantine) == [
        ["id:not_null", "amount:min", "channel:allowed", "at:type"],
        ["at:not_null"],
    ]
    assert outcome.check_counts == {
        "id:not_null": 1, "id:type": 0, "amount:not_null": 0, "amount:type": 0,
        "amount:min": 1, "channel:type": 0, "channel:allowed": 1, "at:not_null": 1, "at:type": 1,
    }  # fmt: skip


def test_quarantine_keeps_the_raw_rows_and_all_their_columns() -> None:
    spec = ColumnSpec(name="amount", type="float", min=0)
    frame = pl.DataFrame({"_offset": [1, 2], "amount": ["-5", "3"], "note": ["x", "y"]})

    outcome = validate_frame(contract(spec), frame)

    assert outcome.quarantine.to_dicts() == [
        {"_offset": 1, "amount": "-5", "note": "x", "reason_codes": ["amount:min"]}
    ]
    assert outcome.quarantine.schema["reason_codes"] == pl.List(pl.String)


def test_valid_has_contract_columns_in_order_then_metadata() -> None:
    specs = (ColumnSpec(name="a", type="int"), ColumnSpec(name="b", type="string"))
    frame = pl.DataFrame(
        {"_ingested_at": [10], "b": ["x"], "extra": [1.0], "a": [1], "_shard": [0]}
    )

    outcome = validate_frame(contract(*specs), frame)

    assert outcome.valid.columns == ["a", "b", "_ingested_at", "_shard"]
    assert outcome.extra_columns == ("extra",)
    assert outcome.passed


def test_missing_required_columns_raise_naming_them() -> None:
    specs = (
        ColumnSpec(name="id", type="string", required=True),
        ColumnSpec(name="amount", type="float", required=True),
        ColumnSpec(name="note", type="string"),
    )

    with pytest.raises(
        DataError, match="lacks required column\\(s\\) 'id', 'amount' of contract 't'"
    ):
        validate_frame(contract(*specs), pl.DataFrame({"other": [1]}))


def test_missing_optional_column_is_all_null() -> None:
    specs = (
        ColumnSpec(name="id", type="string", required=True),
        ColumnSpec(name="n", type="int", min=0),
    )

    outcome = validate_frame(contract(*specs), pl.DataFrame({"id": ["a", "b"]}))

    assert outcome.valid.schema == pl.Schema({"id": pl.String(), "n": pl.Int64()})
    assert outcome.valid["n"].to_list() == [None, None]
    assert outcome.check_counts == {"id:not_null": 0, "id:type": 0, "n:type": 0, "n:min": 0}


def test_all_null_column_of_null_dtype_is_typed() -> None:
    specs = (ColumnSpec(name="n", type="int"), ColumnSpec(name="t", type="timestamp"))

    outcome = validate_frame(contract(*specs), pl.DataFrame({"n": [None], "t": [None]}))

    assert outcome.valid.schema == pl.Schema({"n": pl.Int64(), "t": pl.Datetime("ms", "UTC")})


def test_empty_frame_is_valid_input() -> None:
    spec = ColumnSpec(name="a", type="int", required=True, min=0)
    empty = pl.DataFrame(schema={"a": pl.String})

    outcome = validate_frame(contract(spec), empty)

    assert (outcome.rows_in, outcome.rows_valid, outcome.rows_quarantined) == (0, 0, 0)
    assert outcome.bad_row_share == 0.0
    assert outcome.passed
    assert outcome.valid.schema == pl.Schema({"a": pl.Int64()})
    assert outcome.quarantine.schema == pl.Schema(
        {"a": pl.String(), "reason_codes": pl.List(pl.String())}
    )
    assert outcome.check_counts == {"a:not_null": 0, "a:type": 0, "a:min": 0}


def test_empty_frame_fails_a_min_rows_contract() -> None:
    spec = ColumnSpec(name="a", type="int")

    outcome = validate_frame(contract(spec, min_rows=1), pl.DataFrame(schema={"a": pl.Int64}))

    assert not outcome.passed
    assert outcome.reasons_failed == ["0 rows in, fewer than min_rows 1"]


def test_bad_share_above_the_limit_fails() -> None:
    spec = ColumnSpec(name="a", type="int", min=0)
    frame = pl.DataFrame({"a": [-1, 1, 2, 3]})

    at_limit = validate_frame(contract(spec, share=0.25), frame)
    below_limit = validate_frame(contract(spec, share=0.2), frame)

    assert at_limit.passed and at_limit.reasons_failed == []
    assert not below_limit.passed
    assert below_limit.reasons_failed == [
        "bad row share 0.2500 (1 of 4 rows quarantined) exceeds max_bad_row_share 0.2"
    ]


def test_lazy_frames_are_accepted() -> None:
    spec = ColumnSpec(name="a", type="int", min=0)

    outcome = validate_frame(contract(spec), pl.LazyFrame({"a": [-1, 1]}))

    assert (outcome.rows_valid, outcome.rows_quarantined) == (1, 1)


def test_rows_split_exactly_once() -> None:
    spec = ColumnSpec(name="a", type="int", min=0, max=10)
    frame = pl.DataFrame({"a": list(range(-50, 50))})

    outcome = validate_frame(contract(spec), frame)

    assert outcome.rows_valid + outcome.rows_quarantined == outcome.rows_in == 100
    assert sorted(outcome.valid["a"].to_list() + outcome.quarantine["a"].to_list()) == list(
        range(-50, 50)
    )


@pytest.mark.parametrize(
    ("column", "spec_type"),
    [
        (pl.Series("a", [[1]]), "int"),
        (pl.Series("a", [b"x"]), "string"),
        (pl.Series("a", [dt.date(2026, 1, 1)]), "float"),
        (pl.Series("a", [5]), "timestamp"),
    ],
)
def test_unreadable_dtype_is_a_data_error(column: pl.Series, spec_type: Any) -> None:
    spec = ColumnSpec(name="a", type=spec_type)

    with pytest.raises(DataError, match=f"column 'a' has dtype .*cannot be read as {spec_type}"):
        validate_frame(contract(spec), column.to_frame())


def test_text_timestamps_need_a_format() -> None:
    spec = ColumnSpec(name="t", type="timestamp")

    with pytest.raises(
        DataError, match="column 't' holds text, but the contract gives no timestamp_format"
    ):
        validate_frame(contract(spec), pl.DataFrame({"t": ["2026-01-01T00:00:00.000Z"]}))


def test_a_reason_codes_column_in_the_data_is_refused() -> None:
    spec = ColumnSpec(name="a", type="int")

    with pytest.raises(DataError, match="column named 'reason_codes'"):
        validate_frame(contract(spec), pl.DataFrame({"a": [1], "reason_codes": ["x"]}))


def test_decimals_are_read_as_numbers() -> None:
    specs = (ColumnSpec(name="i", type="int"), ColumnSpec(name="f", type="float", max=2))
    frame = pl.DataFrame(
        {
            "i": pl.Series([Decimal("3"), Decimal("3.5")], dtype=pl.Decimal(5, 1)),
            "f": pl.Series([Decimal("1.5"), Decimal("2.5")], dtype=pl.Decimal(5, 1)),
        }
    )

    outcome = validate_frame(contract(*specs), frame)

    assert outcome.valid.row(0) == (3, 1.5)
    assert reasons(outcome.quarantine) == [["i:type", "f:max"]]
