"""Endpoint state machine: failed updates keep serving; a crash mid-update is recovered;
traffic follows the variants' weights."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
import sqlalchemy as sa

from shipyard.core.errors import StorageError
from shipyard.core.package import PackageContents
from shipyard.pipeline import Workspace
from shipyard.serve import IN_SERVICE, UPDATING, Target, VariantSpec
from shipyard.serve.codecs import RequestRows
from shipyard.storage.schema import endpoints
from shipyard.train import TrainResult
from tests.serve.conftest import register


def test_an_update_to_an_unloadable_model_keeps_the_old_one_serving(
    deployed: Workspace, trained: TrainResult
) -> None:
    c = trained.contents
    broken = register(
        deployed, PackageContents(b"not a ubj model", c.prep, c.framework_version)
    )  # its sha256 matches, but the bytes are no model
    with pytest.raises(StorageError, match="could not load fraud@2"):
        deployed.endpoints.update_endpoint("fraud", [VariantSpec("AllTraffic", broken)])
    description = deployed.endpoints.describe("fraud")
    assert description.status == IN_SERVICE
    assert deployed.endpoints.serving_versions("fraud")["AllTraffic"].version == 1
    assert deployed.endpoints.runtime("fraud").variants[0].ref.version == 1


def test_an_endpoint_left_updating_by_a_crash_serves_its_last_config(
    deployed: Workspace,
) -> None:
    with deployed.meta.transaction() as connection:
        connection.execute(
            sa.update(endpoints).where(endpoints.c.name == "fraud").values(status=UPDATING)
        )
    restarted = Workspace.open(deployed.settings)
    try:
        assert restarted.endpoints.load_in_service() == ["fraud"]
        assert restarted.endpoints.describe("fraud").status == IN_SERVICE
        assert restarted.endpoints.runtime("fraud").variants[0].ref.version == 1
    finally:
        restarted.close()


def test_traffic_is_split_by_variant_weight(workspace: Workspace, trained: TrainResult) -> None:
    first, second = register(workspace, trained.contents), register(workspace, trained.contents)
    workspace.endpoints.create_endpoint(
        "split", [VariantSpec("A", first, 3.0), VariantSpec("B", second, 1.0)]
    )
    runtime = workspace.endpoints.runtime("split")
    body = orjson.dumps(trained.holdout_events.drop("is_fraud").head(1).to_dicts())
    served = Counter(
        runtime.score(RequestRows(body, "application/json"), Target()).variant for _ in range(4000)
    )
    # B's expected share is 0.25, sd 0.0068 over 4,000 requests: +-0.03 is about 4.4 sd.
    assert set(served) == {"A", "B"}
    assert abs(served["B"] / 4000 - 0.25) < 0.03, served
