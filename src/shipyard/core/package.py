"""The model package: the unit of deployment.

A package is a folder in the object store holding the model in its framework's native safe
format (XGBoost UBJ, LightGBM text or scikit-learn via skops; never pickle, see
:mod:`shipyard.core.artifacts`) and ``package.json``: the framework, the feature preparation,
the input signature, metrics, parameters, and the sha256 of the model file. The registry records
the sha256 of ``package.json`` itself, so one recorded hash pins every byte that gets loaded.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from shipyard.core.artifacts import (
    ARTIFACT_NAMES,
    check_framework,
    load_native,
    predict_positive,
)
from shipyard.core.errors import IntegrityError, ModelFault, StorageError
from shipyard.core.features import FeaturePrep

if TYPE_CHECKING:
    import polars as pl

    from shipyard.storage.objectstore import ObjectStore

_SHA256 = re.compile(r"[0-9a-f]{64}")
FORMAT_VERSION = 1
MANIFEST_NAME = "package.json"
XGBOOST_ARTIFACT = ARTIFACT_NAMES["xgboost"]


@dataclass(frozen=True)
class FaultInjection:
    """Deliberate failures for drills: a share of requests raise a model error, and every
    model call takes ``latency_ms`` longer (a latency regression)."""

    error_rate: float = 0.0
    seed: int = 0
    latency_ms: float = 0.0


@dataclass(frozen=True)
class PackageContents:
    """What a trainer hands over to be stored as a package."""

    model_bytes: bytes
    prep: FeaturePrep
    framework_version: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    fault_injection: FaultInjection | None = None
    framework: str = "xgboost"


@dataclass(frozen=True)
class StoredPackage:
    manifest_uri: str
    manifest_sha256: str
    manifest: dict[str, Any]


def write_package(store: ObjectStore, prefix: str, contents: PackageContents) -> StoredPackage:
    """Store the model file, then the manifest that names its sha256."""
    artifact = ARTIFACT_NAMES[check_framework(contents.framework, "the package")]
    model_sha = store.put_bytes(f"{prefix}/{artifact}", contents.model_bytes)
    prep = contents.prep.to_dict()
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "framework": contents.framework,
        "framework_version": contents.framework_version,
        "artifact": {"name": artifact, "sha256": model_sha},
        "prep": prep,
        "signature": {
            "inputs": [
                {"name": name, "type": kind} for name, kind in contents.prep.input_types.items()
            ],
            "output": "fraud_probability",
        },
        "metrics": contents.metrics,
        "params": contents.params,
        "fault_injection": (
            None
            if contents.fault_injection is None
            else {
                "error_rate": contents.fault_injection.error_rate,
                "seed": contents.fault_injection.seed,
                "latency_ms": contents.fault_injection.latency_ms,
            }
        ),
    }
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    key = f"{prefix}/{MANIFEST_NAME}"
    sha = store.put_bytes(key, data)
    return StoredPackage(manifest_uri=store.url(key), manifest_sha256=sha, manifest=manifest)


class PackagedModel:
    """A loaded, verified package that scores raw events.

    ``booster`` is the framework's fitted model: an XGBoost or LightGBM ``Booster``, or a
    scikit-learn estimator.
    """

    def __init__(self, manifest: dict[str, Any], model_bytes: bytes) -> None:
        self.manifest = manifest
        self.framework = check_framework(manifest.get("framework", "xgboost"), "the package")
        self.prep = FeaturePrep.from_dict(manifest["prep"])
        self.booster = load_native(self.framework, model_bytes)
        fault = manifest.get("fault_injection") or {}
        self._error_rate = float(fault.get("error_rate", 0.0))
        self._latency_s = float(fault.get("latency_ms", 0.0)) / 1000.0
        self._fault_rng = random.Random(int(fault.get("seed", 0)))
        self._fault_lock = threading.Lock()

    @property
    def input_types(self) -> dict[str, str]:
        """Input column -> type, in the order CSV requests must follow."""
        return {item["name"]: item["type"] for item in self.manifest["signature"]["inputs"]}

    def score(self, events: pl.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
        """Fraud probability per event, and counts of unseen category values per column."""
        self._inject_fault()
        prepared = self.prep.transform(events)
        return self.score_prepared(prepared.matrix, faults=False), prepared.unseen_counts

    def score_prepared(self, matrix: np.ndarray, *, faults: bool = True) -> np.ndarray:
        """Fraud probability per row of a matrix that ``self.prep`` made (serving prepares
        each request's events itself, then scores them together in one call)."""
        if faults:
            self._inject_fault()
        if len(matrix) == 0:
            return np.zeros(0, dtype=np.float32)
        return predict_positive(self.framework, self.booster, matrix)

    def inject_latency(self) -> None:
        """The package's injected latency: once per model call, however many requests."""
        if self._latency_s > 0.0:
            time.sleep(self._latency_s)

    def injected_failures(self, requests: int) -> list[bool]:
        """Which of ``requests`` requests the injected error rate fails: one draw per request,
        so a batch of them fails the declared share of requests, as single calls do."""
        if self._error_rate <= 0.0:
            return [False] * requests
        with self._fault_lock:
            return [self._fault_rng.random() < self._error_rate for _ in range(requests)]

    def _inject_fault(self) -> None:
        self.inject_latency()
        if self.injected_failures(1)[0]:
            raise injected_fault()


def injected_fault() -> ModelFault:
    return ModelFault("injected fault: this model version is deliberately faulty")


def load_package(store: ObjectStore, manifest_uri: str, manifest_sha256: str) -> PackagedModel:
    """Load a package, verifying the manifest's and the model file's sha256 first."""
    key = store.key_of(manifest_uri)
    manifest_bytes = store.get_bytes(key, sha256=manifest_sha256)
    try:
        manifest = orjson.loads(manifest_bytes)
    except orjson.JSONDecodeError as exc:
        raise StorageError(f"{manifest_uri} is not a valid package manifest: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StorageError(
            f"{manifest_uri} has package format {manifest.get('format_version')!r}; "
            f"this Shipyard reads format {FORMAT_VERSION}"
        )
    artifact = manifest.get("artifact") if isinstance(manifest, dict) else None
    missing = [
        k for k in ("prep", "signature") if not isinstance(manifest, dict) or k not in manifest
    ]
    if not isinstance(artifact, dict) or missing:
        raise StorageError(f"{manifest_uri} is not a complete package manifest")
    name, sha = artifact.get("name"), artifact.get("sha256")
    if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", ".."):
        raise IntegrityError(f"{manifest_uri} names an artifact outside its package folder")
    framework = manifest.get("framework", "xgboost")
    check_framework(framework, manifest_uri)
    if name != ARTIFACT_NAMES[framework]:
        # The file's name says which loader reads it; a mismatch would hand e.g. a skops
        # file to another framework's parser.
        raise IntegrityError(
            f"{manifest_uri} names artifact {name!r} for framework {framework!r}, "
            f"which stores {ARTIFACT_NAMES[framework]!r}"
        )
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        # Without a hash the model file would load unverified.
        raise IntegrityError(f"{manifest_uri} does not pin its artifact with a sha256")
    folder = key.rsplit("/", 1)[0]
    model_bytes = store.get_bytes(f"{folder}/{name}", sha256=sha)
    return PackagedModel(manifest, model_bytes)
