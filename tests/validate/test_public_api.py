from __future__ import annotations

import shipyard.validate


def test_public_names_are_pinned() -> None:
    assert sorted(shipyard.validate.__all__) == [
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
    for name in shipyard.validate.__all__:
        assert getattr(shipyard.validate, name).__module__.startswith("shipyard.validate.")
