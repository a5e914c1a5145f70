from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.core.package import FaultInjection, PackageContents
from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.pipeline.packages import publish_package
from shipyard.serve import VariantSpec
from shipyard.train import TrainResult


def register(workspace: Workspace, contents: PackageContents, *, approve: bool = True) -> ModelRef:
    return publish_package(workspace, "fraud", contents, approve=approve).ref


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
def deployed(workspace: Workspace, trained: TrainResult) -> Workspace:
    """Endpoint 'fraud' serving version 1 of group 'fraud'."""
    ref = register(workspace, trained.contents)
    workspace.endpoints.create_endpoint("fraud", [VariantSpec("AllTraffic", ref)])
    return workspace


@pytest.fixture
def server(deployed: Workspace) -> Iterator[BackgroundServer]:
    with BackgroundServer(deployed) as running:
        yield running
