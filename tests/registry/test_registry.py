from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.errors import InvalidRequestError, NotFoundError, ShipyardError, StateError
from shipyard.core.types import ModelRef
from shipyard.registry import (
    APPROVED,
    PENDING,
    PRODUCTION,
    REJECTED,
    AliasMove,
    ModelRegistry,
    alias_name,
)
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
    with pytest.raises(NotFoundError, match=r"no version fraud-detector@9.*known versions: 1"):
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


def test_a_version_keeps_everything_it_was_registered_with(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    registry.register(
        "fraud-detector",
        artifact_uri="s3://models/fraud/1/package.json",
        sha256="0f" * 32,
        framework="lightgbm",
        framework_version="4.7.0",
        signature={"inputs": [{"name": "amount", "type": "float"}]},
        metrics={"auc_pr": 0.31, "brier": 0.004},
        params={"num_leaves": 63},
        lineage={"datasets": ["ds-a", "ds-b"], "code_version": "abc123", "training_job": "job-7"},
        actor="trainer",
    )
    reopened = ModelRegistry(MetadataStore(f"sqlite:///{tmp_path / 'r.db'}"))
    v = reopened.get("fraud-detector", 1)
    assert (v.artifact_uri, v.sha256, v.framework, v.framework_version) == (
        "s3://models/fraud/1/package.json", "0f" * 32, "lightgbm", "4.7.0"
    )  # fmt: skip
    assert v.signature == {"inputs": [{"name": "amount", "type": "float"}]}
    assert v.params == {"num_leaves": 63}
    assert v.lineage["training_job"] == "job-7" and v.lineage["code_version"] == "abc123"
    assert v.created_at.tzinfo is not None


def test_numbers_are_never_reused_after_a_delete(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for _ in range(3):
        _register(registry)
    registry.approve("fraud-detector", 1)
    registry.promote("fraud-detector", 1, "production")
    with pytest.raises(StateError, match="fraud-detector@1 is the production version"):
        registry.delete_version("fraud-detector", 1, actor="ops", reason="cleanup")
    registry.delete_version("fraud-detector", 3, actor="ops", reason="bad build")
    assert _register(registry) == 4
    assert [v.version for v in registry.list_versions("fraud-detector")] == [1, 2, 4]
    deleted = [e for e in registry.history("fraud-detector") if e.action == "delete"]
    assert [(e.subject, e.actor, e.reason) for e in deleted] == [
        ("fraud-detector@3", "ops", "bad build")
    ]
    assert [e.action for e in registry.history("fraud-detector", 3)] == ["register", "delete"]
    with pytest.raises(NotFoundError, match="known versions: 1-2, 4"):
        registry.history("fraud-detector", 5)


def test_a_registration_the_database_refuses_leaves_nothing(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _register(registry)
    # A real failure inside the transaction, after the version number was taken.
    with registry.meta.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON model_versions "
            "WHEN NEW.artifact_uri = 'file:///refused' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
        )
    events_before = len(list_events(registry.meta))
    with pytest.raises(ShipyardError, match="refused by the test trigger"):
        registry.register(
            "fraud-detector", artifact_uri="file:///refused", sha256="ab" * 32,
            framework="xgboost", framework_version="3.2.0", signature={}, metrics={},
            params={}, lineage={},
        )  # fmt: skip
    assert len(list_events(registry.meta)) == events_before
    assert _register(registry) == 2  # the refused one's number was never issued


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("group", "a/b", "not allowed"),
        ("group", "..", "not allowed"),
        ("group", "a\\b", "not allowed"),
        ("group", "x" * 64, "not allowed"),
        ("sha256", "xyz", "not 64 lower-case hex digits"),
        ("sha256", "AB" * 32, "not 64 lower-case hex digits"),
        ("artifact_uri", " ", "artifact_uri is empty"),
        ("framework", "", "framework '' must be"),
        ("framework_version", "1" * 40, "framework_version"),
        ("metrics", {"auc": float("nan")}, "metrics is not storable as JSON"),
        ("params", {"when": object()}, "params is not storable as JSON"),
        ("lineage", {"datasets": "ds-1"}, "lineage.datasets must be a list"),
        ("signature", ["amount"], "signature must be a mapping"),
    ],
)
def test_bad_registrations_are_refused_before_anything_is_written(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    registry = _registry(tmp_path)
    arguments: dict[str, Any] = {
        "artifact_uri": "file:///m/package.json", "sha256": "ab" * 32, "framework": "xgboost",
        "framework_version": "3.2.0", "signature": {}, "metrics": {}, "params": {},
        "lineage": {},
    }  # fmt: skip
    group = "fraud-detector"
    if field == "group":
        group = str(value)
    else:
        arguments[field] = value
    with pytest.raises(InvalidRequestError, match=message):
        registry.register(group, **arguments)
    assert registry.list_groups() == []
    assert list_events(registry.meta) == []


def test_stage_words_and_aliases_name_the_same_thing(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for _ in range(2):
        _register(registry)
    registry.approve("fraud-detector", 1)
    registry.approve("fraud-detector", 2)
    assert alias_name(stage="Production") == alias_name("production") == PRODUCTION
    assert alias_name(stage="STAGING") == "staging"
    registry.promote("fraud-detector", 1, "Production", actor="alice", reason="ship")
    registry.promote("fraud-detector", 2, "staging", actor="alice", reason="try")
    assert registry.alias_version("fraud-detector", "PRODUCTION") == 1
    assert registry.get_by_alias("fraud-detector", "staging").version == 2
    assert registry.get_group("fraud-detector").aliases == {"production": 1, "staging": 2}
    with pytest.raises(InvalidRequestError, match="stage 'Archived' is not one of"):
        alias_name(stage="Archived")
    with pytest.raises(InvalidRequestError, match="alias name 'a/b' is not allowed"):
        registry.promote("fraud-detector", 1, "a/b")
    with pytest.raises(NotFoundError, match=r"no alias 'champion'.*production -> 1"):
        registry.get_by_alias("fraud-detector", "champion")
    moved = registry.promote("fraud-detector", 1, "production", actor="alice", reason="again")
    assert not moved.moved  # already there: no change, no event
    assert len([e for e in registry.history("fraud-detector") if e.action == "move"]) == 2


def test_rejecting_production_hands_it_to_the_newest_approved(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for _ in range(4):
        _register(registry)
    for version in (1, 2, 3):
        registry.approve("fraud-detector", version)
    registry.promote("fraud-detector", 2, "production")
    change = registry.update_approval(
        "fraud-detector", 2, REJECTED, actor="bob", reason="recall dropped"
    )
    assert change.alias_moves == (AliasMove("fraud-detector", "production", 2, 3),)
    assert registry.alias_version("fraud-detector", "production") == 3
    registry.reject("fraud-detector", 1)
    with pytest.raises(StateError, match="no other version of fraud-detector is Approved"):
        registry.reject("fraud-detector", 3, reason="also bad")
    assert registry.get("fraud-detector", 3).approval_status == APPROVED  # nothing written
    with pytest.raises(StateError, match="needs a reason"):
        registry.approve("fraud-detector", 2)
    registry.approve("fraud-detector", 2, actor="bob", reason="false alarm: label delay")
    assert registry.get("fraud-detector", 2).approval_status == APPROVED


def test_rollback_moves_production_to_the_previous_approved(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    for _ in range(3):
        _register(registry)
    registry.approve("fraud-detector", 1)
    registry.approve("fraud-detector", 3)
    with pytest.raises(StateError, match="has no 'production' version"):
        registry.rollback("fraud-detector")
    registry.promote("fraud-detector", 3, "production")
    assert registry.rollback("fraud-detector", actor="ops", reason="drift") == AliasMove(
        "fraud-detector", "production", 3, 1
    )
    with pytest.raises(StateError, match="no Approved version older than fraud-detector@1"):
        registry.rollback("fraud-detector")


def test_history_says_who_did_what_when_and_why(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    _register(registry)
    _register(registry)
    registry.approve("fraud-detector", 1, actor="alice", reason="good metrics")
    registry.promote("fraud-detector", 1, "production", actor="alice", reason="ship it")
    registry.approve("fraud-detector", 2, actor="carol", reason="better")
    registry.promote("fraud-detector", 2, "production", actor="carol", reason="upgrade")
    entries = registry.history("fraud-detector")
    assert [(e.subject, e.action, e.from_state, e.to_state, e.actor) for e in entries] == [
        ("fraud-detector@1", "register", None, PENDING, "system"),
        ("fraud-detector@2", "register", None, PENDING, "system"),
        ("fraud-detector@1", "approval", PENDING, APPROVED, "alice"),
        ("fraud-detector/production", "move", None, "1", "alice"),
        ("fraud-detector@2", "approval", PENDING, APPROVED, "carol"),
        ("fraud-detector/production", "move", "1", "2", "carol"),
    ]
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert all(e.at.tzinfo is not None for e in entries)
    only_v1 = registry.history("fraud-detector", 1)
    assert [e.reason for e in only_v1] == ["", "good metrics", "ship it", "upgrade"]
    with pytest.raises(NotFoundError, match="no model package group 'nope'"):
        registry.history("nope")
