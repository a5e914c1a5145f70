from __future__ import annotations

import shipyard.validate


def test_public_names_are_pinned() -> None:
    assert sorted(shipyard.validate.__all__) == [
        "ColumnSpec",
        "Contract",
        "ValidationOutcome",
        "load_contract",
        "packaged_contract",
        "validate_frame",
    ]
    for name in shipyard.validate.__all__:
        assert getattr(shipyard.validate, name).__module__.startswith("shipyard.validate.")
