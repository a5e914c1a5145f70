"""The drain's landing schema comes from the data contract, not a second copy of it."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shipyard.validate import landing_schema, load_contract, packaged_contract


def test_the_fraud_contract_gives_the_event_schema_in_its_order() -> None:
    schema = landing_schema(packaged_contract("fraud"))
    # docs/fraud-events.md: event_time stays the string the producer sent; JSON types kept.
    assert list(schema.items())[:5] == [
        ("event_id", pl.String()),
        ("event_time", pl.String()),
        ("card_id", pl.String()),
        ("amount", pl.Float64()),
        ("currency", pl.String()),
    ]
    assert schema["card_age_days"] == pl.Int64()
    assert schema["is_foreign"] == pl.Boolean()
    assert len(schema) == 21 and "is_fraud" not in schema  # the label arrives later


def test_a_new_contract_column_reaches_the_landing_schema(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: c\nversion: '1'\ncolumns:\n"
        "  - {name: t, type: timestamp}\n  - {name: n, type: int}\n  - {name: ok, type: bool}\n"
    )
    assert landing_schema(load_contract(path)) == pl.Schema(
        {"t": pl.String(), "n": pl.Int64(), "ok": pl.Boolean()}
    )
