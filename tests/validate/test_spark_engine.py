"""The Spark engine gives the Polars engine's outcome: same counts, same rows, same reasons."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pyspark.sql import SparkSession

from shipyard.core.errors import ConfigError, ContractError, DataError
from shipyard.scenarios.fraud import FraudScenario
from shipyard.validate import (
    ColumnSpec,
    Contract,
    ValidationOutcome,
    packaged_contract,
    validate_frame,
)
from shipyard.validate._spark_datetime import spark_datetime_pattern
from shipyard.validate.spark_engine import validate_spark

pytestmark = [
    pytest.mark.slow,
    # py4j leaves its gateway sockets to the garbage collector.
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
]

UTC = dt.UTC
ISO_MS = "%Y-%m-%dT%H:%M:%S%.3fZ"
NOW = dt.datetime(2026, 12, 1, tzinfo=UTC)


def contract(*columns: ColumnSpec, **settings: Any) -> Contract:
    return Contract(name="t", version="1", columns=columns, **settings)


def both(
    spark: SparkSession, tmp_path: Path, rules: Contract, frame: pl.DataFrame
) -> ValidationOutcome:
    """Validate ``frame`` with both engines via Parquet; assert they agree; the Spark outcome."""
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    expected = validate_frame(rules, pl.read_parquet(path), now=NOW)
    actual = validate_spark(rules, path, spark=spark, now=NOW)
    assert actual.check_counts == expected.check_counts
    assert actual.valid.schema == expected.valid.schema
    assert actual.valid.equals(expected.valid)
    assert actual.quarantine.equals(expected.quarantine)
    assert actual.dataset_checks == expected.dataset_checks
    assert actual.reasons_failed == expected.reasons_failed
    assert (actual.extra_columns, actual.missing_columns) == (
        expected.extra_columns,
        expected.missing_columns,
    )
    return actual


def reasons(outcome: ValidationOutcome) -> list[list[str]]:
    return [list(codes) for codes in outcome.quarantine["reason_codes"].to_list()]


def test_fraud_data_splits_exactly_as_polars_splits_it(spark: SparkSession, tmp_path: Path) -> None:
    events = pl.from_arrow(FraudScenario(seed=2, bad_row_rate=0.05).generate(20_000).events)
    assert isinstance(events, pl.DataFrame)
    row = pl.int_range(pl.len())
    broken_ids = pl.when(row == 7).then(pl.lit("EVT-0000")).when(row == 8).then(pl.lit("evt-1\n"))
    events = events.with_columns(broken_ids.otherwise(pl.col("event_id")).alias("event_id"))
    events = pl.concat([events, events.slice(100, 5), events.slice(100, 1)])  # duplicated ids
    fraud = packaged_contract("fraud").to_dict()
    rules = Contract.from_dict(
        {**fraud, "max_rows": 20_000, "freshness": {"column": "event_time", "max_age_hours": 24}}
    )
    path = tmp_path / "events.parquet"
    events.write_parquet(path)

    expected = validate_frame(rules, pl.read_parquet(path), now=NOW)
    actual = validate_spark(rules, path, spark=spark, now=NOW)

    assert actual.check_counts == expected.check_counts
    assert actual.check_counts["event_id:unique"] == 11
    assert actual.check_counts["event_id:pattern"] == 2
    assert actual.check_counts["event_time:type"] > 0
    assert actual.rows_valid == expected.rows_valid
    assert actual.quarantine["event_id"].to_list() == expected.quarantine["event_id"].to_list()
    assert reasons(actual) == reasons(expected)
    assert actual.valid.equals(expected.valid)
    assert actual.quarantine.equals(expected.quarantine)
    assert actual.dataset_checks == expected.dataset_checks
    assert not actual.dataset_checks["row_count"].passed
    assert actual.reasons_failed == expected.reasons_failed


def test_text_that_does_not_parse_fails_type(spark: SparkSession, tmp_path: Path) -> None:
    specs = (
        ColumnSpec(name="i", type="int"),
        ColumnSpec(name="f", type="float"),
        ColumnSpec(name="b", type="bool"),
        ColumnSpec(name="t", type="timestamp", timestamp_format=ISO_MS),
    )
    frame = pl.DataFrame(
        {
            "i": ["1", "1.5", "x", None, " 1", "+7", "9223372036854775808", "1"],
            "f": ["2.5", "abc", "1e3", None, "1.5d", "0x1p3", "nan", "inf"],
            "b": ["true", "False", "maybe", None, "1", "0", "yes", "TRUE"],
            "t": [
                "2026-11-01T00:00:00.123Z",
                "2026-11-01T00:00:00.123Z",
                "x",
                "2026-11-01 25:61:00",
                "2026-11-01T00:00:00.12Z",
                "2026-11-01t00:00:00.123z",
                "2026-1-1T0:00:00Z",
                "2026-02-30T00:00:00.000Z",
            ],
        }
    )

    outcome = both(spark, tmp_path, contract(*specs), frame)

    assert outcome.check_counts == {"i:type": 4, "f:type": 4, "b:type": 2, "t:type": 5}
    assert outcome.valid.to_dicts() == [
        {"i": 1, "f": 2.5, "b": True, "t": dt.datetime(2026, 11, 1, 0, 0, 0, 123000, tzinfo=UTC)}
    ]


def test_nulls_and_nan_count_as_missing(spark: SparkSession, tmp_path: Path) -> None:
    specs = (
        ColumnSpec(name="id", type="string", required=True),
        ColumnSpec(name="req", type="float", required=True, min=0),
        ColumnSpec(name="opt", type="float", max=1),
    )
    frame = pl.DataFrame(
        {
            "id": ["a", None, "c", "d"],
            "req": [float("nan"), 1.0, None, -1.0],
            "opt": [1.0, float("nan"), None, 2.0],
        }
    )

    outcome = both(spark, tmp_path, contract(*specs), frame)

    assert reasons(outcome) == [
        ["req:not_null"],
        ["id:not_null"],
        ["req:not_null"],
        ["req:min", "opt:max"],
    ]


def test_every_occurrence_of_a_duplicate_fails_unique(spark: SparkSession, tmp_path: Path) -> None:
    specs = (ColumnSpec(name="id", type="string", unique=True), ColumnSpec(name="n", type="int"))
    frame = pl.DataFrame({"id": ["a", "b", "a", None, None, "c", "c", "c"], "n": list(range(8))})

    outcome = both(spark, tmp_path, contract(*specs), frame)

    assert outcome.valid["n"].to_list() == [1, 3, 4]
    assert outcome.check_counts == {"id:type": 0, "id:unique": 5, "n:type": 0}


def test_pattern_must_match_the_whole_value(spark: SparkSession, tmp_path: Path) -> None:
    spec = ColumnSpec(name="m", type="string", pattern=r"m-\d{5}")
    frame = pl.DataFrame({"m": ["m-12345", "m-123456", "xm-12345", "m-12345\n", "m-١٢٣٤٥", None]})

    outcome = both(spark, tmp_path, contract(spec), frame)

    assert outcome.quarantine["m"].to_list() == ["m-123456", "xm-12345", "m-12345\n"]
    assert reasons(outcome) == [["m:pattern"]] * 3


def test_native_types_metadata_and_missing_columns(spark: SparkSession, tmp_path: Path) -> None:
    specs = (
        ColumnSpec(name="i", type="int", min=0),
        ColumnSpec(name="b", type="bool"),
        ColumnSpec(name="t", type="timestamp"),
        ColumnSpec(name="s", type="string", allowed=("1", "2")),
        ColumnSpec(name="absent", type="float", min=0),
    )
    frame = pl.DataFrame(
        {
            "_offset": [1, 2, 3, 4],
            "i": [1.0, 2.5, float("inf"), -3.0],
            "b": [0, 1, 2, 1],
            "t": [dt.datetime(2026, 1, 1, 8, 0, 0, 123456)] * 4,
            "s": [1, 2, 3, 1],
            "note": ["w", "x", "y", "z"],
        }
    )

    outcome = both(spark, tmp_path, contract(*specs), frame)

    assert outcome.valid.columns == ["i", "b", "t", "s", "absent", "_offset"]
    assert outcome.extra_columns == ("note",)
    assert reasons(outcome) == [
        ["i:type"],
        ["i:type", "b:type", "s:allowed"],
        ["i:min"],
    ]


def test_empty_data_and_dataset_checks(spark: SparkSession, tmp_path: Path) -> None:
    spec = ColumnSpec(name="t", type="timestamp", timestamp_format=ISO_MS, required=True)
    rules = contract(spec, min_rows=1, freshness={"column": "t", "max_age_hours": 1})

    outcome = both(spark, tmp_path, rules, pl.DataFrame(schema={"t": pl.String}))

    assert not outcome.passed
    assert outcome.quarantine.schema["reason_codes"] == pl.List(pl.String())


def test_a_spark_dataframe_is_accepted(spark: SparkSession, tmp_path: Path) -> None:
    spec = ColumnSpec(name="a", type="int", min=0)
    pl.DataFrame({"a": [-1, 1]}).write_parquet(tmp_path / "a.parquet")

    outcome = validate_spark(contract(spec), spark.read.parquet(str(tmp_path / "a.parquet")))

    assert (outcome.rows_valid, outcome.rows_quarantined) == (1, 1)


def test_missing_required_columns_raise_naming_them(spark: SparkSession, tmp_path: Path) -> None:
    specs = (ColumnSpec(name="id", type="string", required=True), ColumnSpec(name="n", type="int"))
    pl.DataFrame({"other": [1]}).write_parquet(tmp_path / "x.parquet")

    with pytest.raises(DataError, match="lacks required column\\(s\\) 'id' of contract 't'"):
        validate_spark(contract(*specs), tmp_path / "x.parquet", spark=spark)


def test_a_session_outside_utc_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "a.parquet")
    spark.conf.set("spark.sql.session.timeZone", "Europe/Paris")
    try:
        with pytest.raises(ConfigError, match="time zone is 'Europe/Paris'"):
            validate_spark(contract(ColumnSpec(name="a", type="int")), tmp_path / "a.parquet")
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_a_pattern_java_cannot_compile_is_a_contract_error(
    spark: SparkSession, tmp_path: Path
) -> None:
    spec = ColumnSpec(name="m", type="string", pattern="(?P<id>m)-1")
    pl.DataFrame({"m": ["m-1"]}).write_parquet(tmp_path / "m.parquet")

    with pytest.raises(ContractError, match="pattern '\\(\\?P<id>m\\)-1' is not supported by Java"):
        validate_spark(contract(spec), tmp_path / "m.parquet", spark=spark)


def test_strftime_translates_to_a_spark_pattern() -> None:
    pattern, regex = spark_datetime_pattern("t", ISO_MS)
    assert pattern == "yyyy'-'M'-'d'T'H':'m':'s[.SSS]'Z'"
    assert regex.startswith(r"^[0-9]{4}\-[0-9]{1,2}\-") and regex.endswith(r"Z\z")
    with_offset = spark_datetime_pattern("t", "%F %T%z it's %%")[0]
    assert with_offset == "yyyy'-'M'-'d' 'H':'m':'s[xx][xxx]' it''s %'"
    assert spark_datetime_pattern("t", "%%F")[0] == "'%F'"
    with pytest.raises(ContractError, match="timestamp_format '%d/%b/%Y' uses '%b'"):
        spark_datetime_pattern("t", "%d/%b/%Y")


def test_the_sessions_python_workers_run_shipyards_interpreter(spark: SparkSession) -> None:
    # Whichever engine starts the session (validation or training), its workers must import
    # what Shipyard's environment holds: the training tasks need pandas and xgboost.
    assert spark.sparkContext.pythonExec == sys.executable

    def imports_pandas(_: object) -> list[bool]:
        import pandas  # noqa: F401

        return [True]

    assert spark.sparkContext.parallelize([0, 1], 2).mapPartitions(imports_pandas).collect() == [
        True,
        True,
    ]
