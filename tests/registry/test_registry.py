from __future__ import annotations

import threading
from pathlib import Path

import pytest

from shipyard.core.errors import InvalidRequestError, NotFoundError, StateError
from shipyard.core.types import ModelRef
from shipyard.registry import APPROVED, PENDING, REJECTED, ModelRegistry
from shipyard.storage import MetadataStore, list_events


def _registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(MetadataStore(f"sqlite:///{tmp_path / 'r.db'}"))


def _register(registry: ModelRegistry, group: str = "fraud-detector") -> int:
    version = registry.register(
        group,
        artifact_uri=f"file:///models/{group}/package.json",
        sha256="ab" * 32,
        framework="xgboost",
        framework_version="3.2.0",
        signature={"inputs": [{"name": "amount", "type": "float"}]},
        metrics={"auc_pr": 0.2},
        params={"max_depth": 6},
        lineage={"datasets": ["ds-1"]},
    )
    return version.version


def test_versions_are_numbered_per_group_and_start_pending(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    assert [_register(registry) for _ in range(3)] == [1, 2, 3]
    assert _register(registry, "other") == 1
    v2 = registry.get("fraud-detector", 2)
    assert v2.approval_status == PENDING
    assert v2.metrics == {"auc_pr": 0.2}
    assert v2.lineage == {"datasets": ["ds-1"]}


def test_approval_and_production_alias(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _register(registry)
    with pytest.raises(StateError, match="only an Approved version can be production"):
        registry.set_alias("fraud-detector", "production", 1, actor="t", reason="too early")
    registry.approve("fraud-detector", 1, actor="alice", reason="good metrics")
    registry.set_alias("fraud-detector", "Production", 1, actor="alice", reason="ship it")
    assert registry.alias_version("fraud-detector", "production") == 1
    assert registry.get("fraud-detector", 1).aliases == ("production",)
    events = list_events(registry.meta, entity_kind="model")
    assert [(e["action"], e["to_state"], e["actor"]) for e in events] == [
        ("register", PENDING, "system"),
        ("approval", APPROVED, "alice"),
    ]
    moves = list_events(registry.meta, entity_kind="model_alias")
    assert moves[0]["reason"] == "ship it"


def test_previous_approved_skips_rejected_and_pending(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for _ in range(4):
        _register(registry)
    registry.approve("fraud-detector", 1)
    registry.reject("fraud-detector", 2)
    registry.approve("fraud-detector", 4)
    previous = registry.previous_approved(ModelRef("fraud-detector", 4))
    assert previous is not None and previous.ref == ModelRef("fraud-detector", 1)
    assert registry.previous_approved(ModelRef("fraud-detector", 1)) is None
    assert registry.get("fraud-detector", 2).approval_status == REJECTED


def test_errors_name_the_problem(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _register(registry)
    with pytest.raises(NotFoundError, match=r"no version fraud-detector@9.*known versions: \[1\]"):
        registry.get("fraud-detector", 9)
    with pytest.raises(InvalidRequestError, match="not allowed"):
        _register(registry, "../etc")
    with pytest.raises(InvalidRequestError, match="not one of"):
        registry.set_approval("fraud-detector", 1, "Maybe")


def _register_concurrently(meta_url: str, threads: int = 12) -> list[int]:
    registry = ModelRegistry(MetadataStore(meta_url))
    barrier = threading.Barrier(threads)
    versions: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            versions.append(_register(registry, "fresh-group"))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    events = list_events(registry.meta, entity_kind="model")
    assert len(events) == threads
    registry.meta.dispose()
    return sorted(versions)


def test_concurrent_first_versions_on_sqlite(tmp_path: Path) -> None:
    assert _register_concurrently(f"sqlite:///{tmp_path / 'c.db'}") == list(range(1, 13))


@pytest.mark.postgres
def test_concurrent_first_versions_on_postgresql(postgres_url: str) -> None:
    assert _register_concurrently(postgres_url) == list(range(1, 13))
