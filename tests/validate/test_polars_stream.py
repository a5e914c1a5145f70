"""Streaming the split to Parquet, chunk by chunk, gives exactly what validating in memory gives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from shipyard.scenarios.fraud import FraudScenario
from shipyard.validate import (
    ColumnSpec,
    Contract,
    packaged_contract,
    validate_frame,
    validate_to_parquet,
)

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def fraud_events(rows: int) -> pl.DataFrame:
    events = pl.from_arrow(FraudScenario(seed=4, bad_row_rate=0.05).generate(rows).events)
    assert isinstance(events, pl.DataFrame)
    # Duplicated ids (every occurrence fails unique) and ingestion metadata passed through.
    events = pl.concat([events, events.slice(30, 4)])
    return events.with_columns(pl.int_range(pl.len()).alias("_offset"))


def test_streamed_split_equals_the_in_memory_split(tmp_path: Path) -> None:
    events = fraud_events(5_000)
    contract = Contract.from_dict(
        {
            **packaged_contract("fraud").to_dict(),
            "freshness": {"column": "event_time", "max_age_hours": 24},
        }
    )
    source = tmp_path / "events.parquet"
    events.write_parquet(source, row_group_size=700)  # several chunks in the stream
    valid_path, quarantine_path = tmp_path / "valid.parquet", tmp_path / "quarantine.parquet"

    expected = validate_frame(contract, events, now=NOW)
    split = validate_to_parquet(
        contract,
        pl.scan_parquet(source),
        valid_path=valid_path,
        quarantine_path=quarantine_path,
        now=NOW,
        chunk_rows=1_500,  # the duplicated ids at the end repeat ones of the first chunk
    )

    result = split.result
    assert result.check_counts == expected.check_counts
    assert result.check_counts["event_id:unique"] == 8
    assert (result.rows_in, result.rows_valid, result.rows_quarantined) == (
        events.height,
        expected.rows_valid,
        expected.rows_quarantined,
    )
    assert result.newest == expected.newest and result.newest is not None
    assert result.dataset_checks == expected.dataset_checks
    for folder, rows in ((valid_path, expected.valid), (quarantine_path, expected.quarantine)):
        parts = sorted(folder.iterdir())
        assert [p.name for p in parts] == [f"part-0000{i}.parquet" for i in range(4)]
        assert pl.read_parquet(parts).equals(rows)


def test_the_sample_holds_evenly_spaced_valid_rows_of_drawn_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shipyard.validate.report.HISTOGRAM_SAMPLE_ROWS", 10)
    contract = Contract(
        name="t",
        version="1",
        columns=(
            ColumnSpec(name="n", type="int", min=0),
            ColumnSpec(name="secret", type="float", sensitive=True),
            ColumnSpec(name="s", type="string"),
        ),
    )
    frame = pl.DataFrame(
        {"n": list(range(100)), "secret": [1.5] * 100, "s": ["x"] * 100}
    ).with_columns(pl.when(pl.col("n") % 10 == 5).then(-1).otherwise(pl.col("n")).alias("n"))

    split = validate_to_parquet(
        contract,
        frame.lazy(),
        valid_path=tmp_path / "v.parquet",
        quarantine_path=tmp_path / "q.parquet",
    )

    assert split.sample.columns == ["n"]  # numeric and not sensitive
    valid = pl.read_parquet(tmp_path / "v.parquet" / "part-00000.parquet")["n"]
    assert split.sample["n"].to_list() == valid.gather_every(10).to_list()


def test_empty_data_writes_one_empty_part_per_side_with_its_schema(tmp_path: Path) -> None:
    contract = Contract(
        name="t", version="1", columns=(ColumnSpec(name="a", type="int", unique=True),)
    )

    split = validate_to_parquet(
        contract,
        pl.LazyFrame(schema={"a": pl.String}),
        valid_path=tmp_path / "v.parquet",
        quarantine_path=tmp_path / "q.parquet",
    )

    assert (split.result.rows_in, split.result.passed) == (0, True)
    part = "part-00000.parquet"
    assert [p.name for p in (tmp_path / "v.parquet").iterdir()] == [part]
    assert pl.read_parquet_schema(tmp_path / "v.parquet" / part) == {"a": pl.Int64()}
    assert pl.read_parquet_schema(tmp_path / "q.parquet" / part) == {
        "a": pl.String(),
        "reason_codes": pl.List(pl.String()),
    }
