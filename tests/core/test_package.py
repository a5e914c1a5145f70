from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest

from shipyard.core.errors import IntegrityError, ModelFault
from shipyard.core.package import FaultInjection, PackageContents, load_package, write_package
from shipyard.storage import ObjectStore
from shipyard.train import TrainResult


def test_package_round_trip_scores_like_training(tmp_path: Path, trained: TrainResult) -> None:
    store = ObjectStore(tmp_path.as_uri())
    stored = write_package(store, "models/g/1", trained.contents)
    assert stored.manifest["artifact"]["name"] == "model.ubj"
    model = load_package(store, stored.manifest_uri, stored.manifest_sha256)
    scores, unseen = model.score(trained.holdout_events.head(100))
    np.testing.assert_allclose(scores, trained.holdout_scores[:100], atol=1e-7)
    assert set(unseen) == {"currency", "merchant_category", "country", "channel"}
    raw = (tmp_path / "models/g/1/model.ubj").read_bytes()
    assert not raw.startswith(b"\x80")  # UBJSON, never a pickle stream


def test_a_changed_manifest_or_model_is_refused(tmp_path: Path, trained: TrainResult) -> None:
    store = ObjectStore(tmp_path.as_uri())
    stored = write_package(store, "models/g/1", trained.contents)
    with pytest.raises(IntegrityError):
        load_package(store, stored.manifest_uri, "0" * 64)
    (tmp_path / "models/g/1/model.ubj").write_bytes(b"other bytes")
    with pytest.raises(IntegrityError, match="model.ubj"):
        load_package(store, stored.manifest_uri, stored.manifest_sha256)


def test_fault_injection_fails_about_its_share(tmp_path: Path, trained: TrainResult) -> None:
    store = ObjectStore(tmp_path.as_uri())
    c = trained.contents
    contents = PackageContents(
        c.model_bytes, c.prep, c.framework_version, fault_injection=FaultInjection(0.3, seed=5)
    )
    stored = write_package(store, "models/g/2", contents)
    model = load_package(store, stored.manifest_uri, stored.manifest_sha256)
    frame: pl.DataFrame = trained.holdout_events.head(1)
    failures = 0
    for _ in range(1000):
        try:
            model.score(frame)
        except ModelFault:
            failures += 1
    assert 240 <= failures <= 360


def test_a_manifest_must_pin_its_model_file(tmp_path: Path, trained: TrainResult) -> None:
    store = ObjectStore(tmp_path.as_uri())
    stored = write_package(store, "models/g/1", trained.contents)
    manifest = orjson.loads(store.get_bytes("models/g/1/package.json"))
    manifest["artifact"]["sha256"] = None
    sha = store.put_bytes("models/g/1/package.json", orjson.dumps(manifest))
    with pytest.raises(IntegrityError, match="does not pin its artifact"):
        load_package(store, stored.manifest_uri, sha)
    manifest["artifact"]["name"] = "../../other/model.ubj"
    sha = store.put_bytes("models/g/1/package.json", orjson.dumps(manifest))
    with pytest.raises(IntegrityError, match="outside its package folder"):
        load_package(store, stored.manifest_uri, sha)
