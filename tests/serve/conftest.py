from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.core.config import Settings
from shipyard.core.package import FaultInjection, PackageContents, write_package
from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult


def register(workspace: Workspace, contents: PackageContents, *, approve: bool = True) -> ModelRef:
    stored = write_package(
        workspace.store, f"models/fraud/{len(workspace.registry.list_versions())}", contents
    )
    version = workspace.registry.register(
        "fraud",
        artifact_uri=stored.manifest_uri,
        sha256=stored.manifest_sha256,
        framework="xgboost",
        framework_version=contents.framework_version,
        signature=stored.manifest["signature"],
        metrics=contents.metrics,
        params={},
        lineage={},
    )
    if approve:
        workspace.registry.approve("fraud", version.version)
    return version.ref


def faulty(contents: PackageContents, rate: float) -> PackageContents:
    return PackageContents(
        contents.model_bytes,
        contents.prep,
        contents.framework_version,
        contents.metrics,
        contents.params,
        FaultInjection(error_rate=rate, seed=0),
    )


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    opened = Workspace.open(settings)
    yield opened
    opened.close()


@pytest.fixture
def deployed(workspace: Workspace, trained: TrainResult) -> Workspace:
    """Endpoint 'fraud' serving version 1 of group 'fraud'."""
    ref = register(workspace, trained.contents)
    workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", ref)])
    return workspace


@pytest.fixture
def server(deployed: Workspace) -> Iterator[BackgroundServer]:
    with BackgroundServer(deployed) as running:
        yield running
