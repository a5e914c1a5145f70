from __future__ import annotations

import threading

import pytest

from shipyard.core.errors import StateError
from shipyard.core.types import ModelRef, ModelVersionInfo
from shipyard.monitor import RollbackController


class FakeModels:
    """Versions 1..n of one group; `approved` says which are Approved."""

    def __init__(self, approved: set[int]) -> None:
        self.approved = approved
        self.aliases: list[tuple[str, int]] = []
        self.rejected: list[int] = []

    def get_version(self, ref: ModelRef) -> ModelVersionInfo:
        status = "Approved" if ref.version in self.approved else "Rejected"
        return ModelVersionInfo(ref, f"file:///{ref.version}", "0" * 64, status)

    def previous_approved(self, ref: ModelRef) -> ModelVersionInfo | None:
        older = [v for v in sorted(self.approved) if v < ref.version]
        return self.get_version(ModelRef(ref.group, older[-1])) if older else None

    def set_alias(self, group: str, alias: str, version: int, *, actor: str, reason: str) -> None:
        self.aliases.append((alias, version))

    def reject(self, group: str, version: int, *, actor: str, reason: str) -> None:
        self.approved.discard(version)
        self.rejected.append(version)


class FakeTraffic:
    def __init__(self, ref: ModelRef) -> None:
        self.ref = ref
        self.routes: list[ModelRef] = []
        self.lock = threading.Lock()

    def serving_versions(self, endpoint: str) -> dict[str, ModelRef]:
        return {"AllTraffic": self.ref}

    def route_all(self, endpoint: str, ref: ModelRef, *, actor: str, reason: str) -> None:
        with self.lock:
            self.routes.append(ref)
            self.ref = ref


def test_rolls_back_to_the_previous_approved_version() -> None:
    models = FakeModels({1, 3})
    traffic = FakeTraffic(ModelRef("g", 4))
    outcome = RollbackController(models, traffic).rollback("ep", reason="errors")
    assert outcome.from_ref == ModelRef("g", 4)
    assert outcome.to_ref == ModelRef("g", 3)
    assert traffic.routes == [ModelRef("g", 3)]
    assert models.aliases == [("production", 3)]
    assert models.rejected == [4]


def test_concurrent_triggers_for_one_suspect_roll_back_once() -> None:
    models = FakeModels({1, 2})
    traffic = FakeTraffic(ModelRef("g", 3))
    controller = RollbackController(models, traffic)
    outcomes = []
    barrier = threading.Barrier(16)

    def trigger() -> None:
        barrier.wait()
        outcomes.append(controller.rollback("ep", reason="x", suspect=ModelRef("g", 3)))

    threads = [threading.Thread(target=trigger) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert traffic.routes == [ModelRef("g", 2)]
    assert sum(1 for o in outcomes if o.to_ref is not None) == 1


def test_no_earlier_approved_version_is_a_clear_error() -> None:
    controller = RollbackController(FakeModels({1}), FakeTraffic(ModelRef("g", 1)))
    with pytest.raises(StateError, match="no Approved version of g older than g@1"):
        controller.rollback("ep", reason="x")
