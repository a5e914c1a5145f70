from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest

from shipyard.core.errors import IntegrityError, ModelFault, StorageError
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


def _lightgbm_and_sklearn(trained: TrainResult) -> list[PackageContents]:
    """Small LightGBM and scikit-learn models on the same features as ``trained``."""
    import lightgbm as lgb
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    width = len(trained.contents.prep.feature_names_)
    x = rng.normal(size=(400, width)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=400) > 0.5).astype(np.float32)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, y), 5)
    hgb = HistGradientBoostingClassifier(max_iter=5).fit(x, y)
    c = trained.contents
    return [
        PackageContents(
            booster.model_to_string().encode(), c.prep, lgb.__version__, framework="lightgbm"
        ),
        PackageContents(sio.dumps(hgb), c.prep, "1", framework="sklearn"),
    ]


def test_lightgbm_and_sklearn_packages_load_verified(tmp_path: Path, trained: TrainResult) -> None:
    store = ObjectStore(tmp_path.as_uri())
    events = trained.holdout_events.head(50)
    for contents, artifact in zip(
        _lightgbm_and_sklearn(trained), ("model.txt", "model.skops"), strict=True
    ):
        prefix = f"models/{contents.framework}/1"
        stored = write_package(store, prefix, contents)
        assert stored.manifest["framework"] == contents.framework
        assert stored.manifest["artifact"]["name"] == artifact
        model = load_package(store, stored.manifest_uri, stored.manifest_sha256)
        scores, _ = model.score(events)
        assert scores.shape == (50,) and ((scores > 0) & (scores < 1)).all()
        (tmp_path / prefix / artifact).write_bytes(contents.model_bytes + b" ")
        with pytest.raises(IntegrityError, match=artifact):
            load_package(store, stored.manifest_uri, stored.manifest_sha256)


def test_a_skops_file_with_an_untrusted_type_is_refused(
    tmp_path: Path, trained: TrainResult
) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    store = ObjectStore(tmp_path.as_uri())
    hostile = sio.dumps(FunctionTransformer(func=os.system))
    c = trained.contents
    stored = write_package(
        store, "models/g/1", PackageContents(hostile, c.prep, "1", framework="sklearn")
    )
    with pytest.raises(IntegrityError, match="outside Shipyard's trusted list: .*system"):
        load_package(store, stored.manifest_uri, stored.manifest_sha256)


def test_a_manifest_must_name_a_known_framework_and_its_file(
    tmp_path: Path, trained: TrainResult
) -> None:
    store = ObjectStore(tmp_path.as_uri())
    stored = write_package(store, "models/g/1", trained.contents)
    manifest = orjson.loads(store.get_bytes("models/g/1/package.json"))
    manifest["framework"] = "pickle"
    sha = store.put_bytes("models/g/1/package.json", orjson.dumps(manifest))
    with pytest.raises(StorageError, match="framework 'pickle'; Shipyard loads xgboost"):
        load_package(store, stored.manifest_uri, sha)
    manifest["framework"] = "sklearn"  # the UBJ file would go to the skops loader
    sha = store.put_bytes("models/g/1/package.json", orjson.dumps(manifest))
    with pytest.raises(IntegrityError, match="names artifact 'model.ubj' for framework 'sklearn'"):
        load_package(store, stored.manifest_uri, sha)
    with pytest.raises(StorageError, match="framework 'pickle'"):
        write_package(store, "models/g/2", replace(trained.contents, framework="pickle"))
