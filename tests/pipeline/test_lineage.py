from __future__ import annotations

import pytest

from shipyard.core.config import Settings
from shipyard.core.errors import NotFoundError
from shipyard.pipeline import Workspace
from shipyard.pipeline.lineage import LineageNode, lineage_of
from shipyard.storage import record_dataset


def _ids(nodes: list[LineageNode]) -> list[str]:
    return [n.id for n in nodes]


def test_upstream_and_downstream_of_datasets_and_models(settings: Settings) -> None:
    ws = Workspace.open(settings)
    try:
        landing = record_dataset(
            ws.meta, name="s/landing", zone="landing", uri="u1", content_hash="h", rows=10
        )
        curated = record_dataset(
            ws.meta, name="s/curated", zone="curated", uri="u2", content_hash="h", rows=9,
            parents=[landing.id],
        )  # fmt: skip
        quarantine = record_dataset(
            ws.meta, name="s/quarantine", zone="quarantine", uri="u3", content_hash="h", rows=1,
            parents=[landing.id],
        )  # fmt: skip
        ws.registry.register(
            "g", artifact_uri="u", sha256="0" * 64, framework="xgboost", framework_version="3",
            signature={}, metrics={}, params={}, lineage={"datasets": [curated.id]},
        )  # fmt: skip

        model = lineage_of(ws, "g@1")
        assert _ids(model.upstream) == [curated.id]
        assert _ids(model.upstream[0].children) == [landing.id]
        assert model.downstream == []

        root = lineage_of(ws, landing.id)
        assert root.upstream == []
        assert sorted(_ids(root.downstream)) == sorted([curated.id, quarantine.id])
        by_id = {n.id: n for n in root.downstream}
        assert _ids(by_id[curated.id].children) == ["g@1"]
        assert "model (PendingManualApproval)" in by_id[curated.id].children[0].label

        with pytest.raises(NotFoundError, match="neither a dataset id"):
            lineage_of(ws, "nonsense")
        with pytest.raises(NotFoundError, match="no version g@7"):
            lineage_of(ws, "g@7")
    finally:
        ws.close()
