"""Publishing: a version always points at a stored package; a failed publish leaves nothing."""

from __future__ import annotations

import pytest

from shipyard.core.errors import ShipyardError
from shipyard.core.package import load_package
from shipyard.pipeline import Workspace
from shipyard.pipeline.packages import publish_package
from shipyard.registry import APPROVED, PENDING
from shipyard.train import TrainResult


def test_a_published_version_loads_its_verified_package(
    workspace: Workspace, trained: TrainResult
) -> None:
    first = publish_package(workspace, "fraud", trained.contents, lineage={"run": "r1"})
    second = publish_package(
        workspace, "fraud", trained.contents, actor="ci", approve=True, reason="gate passed"
    )
    assert (first.version, second.version) == (1, 2)
    assert first.approval_status == PENDING
    assert second.approval_status == APPROVED
    assert first.artifact_uri != second.artifact_uri  # each has its own files
    assert first.metrics == trained.contents.metrics
    assert first.lineage == {"run": "r1"}
    approval = workspace.registry.history("fraud", 2)[-1]
    assert (approval.actor, approval.to_state, approval.reason) == (
        "ci",
        APPROVED,
        "gate passed",
    )
    loaded = load_package(workspace.store, second.artifact_uri, second.sha256)
    matrix = trained.contents.prep.transform(trained.holdout_events.head(5)).matrix
    assert loaded.score_prepared(matrix).tolist() == pytest.approx(
        trained.holdout_scores[:5].tolist()
    )


def test_a_refused_registration_leaves_no_package_behind(
    workspace: Workspace, trained: TrainResult
) -> None:
    with pytest.raises(ShipyardError):
        publish_package(workspace, "no/such group", trained.contents, prefix="models/x/1")
    assert workspace.store.list_keys("models/x/") == []
    assert workspace.registry.list_versions() == []
