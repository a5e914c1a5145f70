from __future__ import annotations

import polars as pl

from shipyard.scenarios import fraud
from shipyard.validate import packaged_contract, validate_frame


def as_frame(table: object) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


# The check that must catch each kind of corruption the generator injects (docs/fraud-events.md).
CHECK_BY_KIND = {
    "null_required": "not_null",
    "negative_amount": "min",
    "unknown_category": "allowed",
    "malformed_timestamp": "type",
}


def test_every_corrupted_row_is_quarantined_and_no_clean_row_is() -> None:
    batch = fraud.FraudScenario(seed=0, bad_row_rate=0.05).generate(20_000)
    corrupted = as_frame(batch.corrupted)
    assert set(corrupted["kind"]) == set(CHECK_BY_KIND)

    outcome = validate_frame(packaged_contract("fraud"), as_frame(batch.events))

    quarantined = outcome.quarantine.select("event_id", "reason_codes")
    assert sorted(quarantined["event_id"]) == sorted(corrupted["event_id"])
    assert outcome.rows_valid == batch.events.num_rows - corrupted.height
    assert outcome.passed
    expected = corrupted.select(
        "event_id",
        expected=pl.concat_list(
            pl.col("column") + ":" + pl.col("kind").replace_strict(CHECK_BY_KIND)
        ),
    )
    mismatched = expected.join(quarantined, on="event_id").filter(
        pl.col("expected") != pl.col("reason_codes")
    )
    assert mismatched.is_empty(), mismatched.head(5)


def test_clean_batch_passes_with_typed_columns() -> None:
    batch = fraud.FraudScenario(seed=1).generate(2_000)

    outcome = validate_frame(packaged_contract("fraud"), as_frame(batch.events))

    assert outcome.rows_quarantined == 0
    assert outcome.valid.schema["event_time"] == pl.Datetime("ms", "UTC")
    assert outcome.extra_columns == ()
