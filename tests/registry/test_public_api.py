from __future__ import annotations

import shipyard.registry


def test_public_names_are_pinned() -> None:
    assert sorted(shipyard.registry.__all__) == [
        "APPROVAL_STATUSES",
        "APPROVED",
        "ActionOutcome",
        "AliasMove",
        "ApprovalChange",
        "HistoryEntry",
        "ModelActions",
        "ModelGroup",
        "ModelRegistry",
        "ModelVersion",
        "PENDING",
        "PRODUCTION",
        "REJECTED",
        "Redeployment",
        "RegistryActions",
        "alias_name",
        "create_registry_routes",
    ]
    for name in shipyard.registry.__all__:
        value = getattr(shipyard.registry, name)
        if callable(value):
            assert value.__module__.startswith("shipyard.registry.")
