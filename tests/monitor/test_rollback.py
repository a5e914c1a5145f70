from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from shipyard.core.config import Settings
from shipyard.core.errors import StateError
from shipyard.core.types import ModelRef, ModelVersionInfo
from shipyard.monitor import ALARM, AlarmSpec, RollbackController, RollbackOutcome
from shipyard.pipeline import Workspace
from shipyard.registry import REJECTED
from shipyard.serve import VariantSpec
from shipyard.storage import list_events
from shipyard.train import TrainResult
from tests.serve.conftest import register


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


# The controller on real endpoints, registry and audit log ---------------------------------


@pytest.fixture
def two_versions(settings: Settings, trained: TrainResult) -> Iterator[Workspace]:
    """Endpoint 'fraud' serving fraud@2 (production), fraud@1 Approved before it."""
    workspace = Workspace.open(settings)
    v1, v2 = register(workspace, trained.contents), register(workspace, trained.contents)
    workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v1)])
    workspace.endpoints.route_all("fraud", v2, actor="ops", reason="ship v2")
    workspace.registry.promote("fraud", 2, "production")
    yield workspace
    workspace.close()


def test_twenty_concurrent_triggers_roll_back_exactly_once(two_versions: Workspace) -> None:
    workspace = two_versions
    barrier = threading.Barrier(20)
    outcomes: list[RollbackOutcome] = []

    def trigger(i: int) -> None:
        barrier.wait()
        outcomes.append(
            workspace.actions.rollback(
                "fraud", reason=f"trigger {i}", actor=f"t{i}", trigger=f"test {i}"
            )
        )

    threads = [threading.Thread(target=trigger, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = [o for o in outcomes if o.rolled_back]
    assert len(done) == 1 and len(outcomes) == 20
    assert (done[0].from_ref, done[0].to_ref) == (ModelRef("fraud", 2), ModelRef("fraud", 1))
    assert workspace.endpoints.serving_versions("fraud") == {"AllTraffic": ModelRef("fraud", 1)}
    assert workspace.registry.alias_version("fraud", "production") == 1
    assert workspace.registry.get("fraud", 2).approval_status == REJECTED
    audit = [e["action"] for e in list_events(workspace.meta, entity_kind="endpoint")]
    assert audit.count("rollback") == 1 and audit.count("rollback-noop") == 19
    noop = next(
        e for e in list_events(workspace.meta, entity_id="fraud") if e["action"] == "rollback-noop"
    )
    assert "rolled back from fraud@2 to fraud@1 while this trigger waited" in noop["reason"]


def test_a_monitor_verdict_long_after_the_rollout_rolls_back(two_versions: Workspace) -> None:
    """Not only inside a rollout window: a drift verdict days later takes the same path."""
    workspace = two_versions
    workspace.alarms.put(
        AlarmSpec(
            name="fraud-prediction-drift",
            metric="prediction_drift_psi",
            endpoint="fraud",
            statistic="Maximum",
            threshold=0.2,
            period_s=60,
            evaluation_periods=1,
            treat_missing_data="notBreaching",
            actions=("rollback",),
        )  # fmt: skip
    )
    now = time.time()
    workspace.metrics.put("prediction_drift_psi", 0.35, endpoint="fraud", at_s=now - 60)
    workspace.alarms.evaluate(now=now)
    assert workspace.alarms.state("fraud-prediction-drift") == ALARM
    assert workspace.endpoints.serving_versions("fraud") == {"AllTraffic": ModelRef("fraud", 1)}
    [rollback] = [
        e for e in list_events(workspace.meta, entity_id="fraud") if e["action"] == "rollback"
    ]
    assert rollback["details"]["trigger"] == "alarm fraud-prediction-drift"
    assert rollback["actor"] == "rollback-controller (alarm fraud-prediction-drift)"
    history = [e["reason"] for e in workspace.alarms.events("fraud-prediction-drift")]
    assert "rollback fraud: fraud@2 -> fraud@1" in history


def test_without_an_older_approved_version_the_refusal_is_recorded(
    settings: Settings, trained: TrainResult
) -> None:
    workspace = Workspace.open(settings)
    try:
        v1 = register(workspace, trained.contents)
        workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", v1)])
        with pytest.raises(StateError, match="no Approved version of fraud older than fraud@1"):
            workspace.actions.rollback("fraud", reason="x", actor="me", trigger="manual")
        [failed] = [
            e for e in list_events(workspace.meta, entity_id="fraud")
            if e["action"] == "rollback-failed"
        ]  # fmt: skip
        assert failed["from_state"] == "fraud@1"
    finally:
        workspace.close()
