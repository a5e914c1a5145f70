"""Multi-model endpoints: versions of one model group loaded on first call, evicted by LRU.

A request names its model with ``X-Amzn-SageMaker-Target-Model`` as ``GROUP/VERSION``,
``GROUP@VERSION`` or just ``VERSION``. The first call loads the package (sha256 checked against
the registry); past ``max_models`` models or ``max_bytes`` of package bytes, the least recently
used model is unloaded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from shipyard.core.errors import ModelFault, NotFoundError, ShipyardError
from shipyard.core.interfaces import ModelStore
from shipyard.core.package import PackagedModel, load_package
from shipyard.core.types import ModelRef
from shipyard.serve.endpoint_config import MultiModelConfig
from shipyard.serve.errors import TargetError
from shipyard.storage import ObjectStore


@dataclass
class MultiModelStats:
    loads: int = 0
    hits: int = 0
    evictions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Loaded:
    model: PackagedModel
    size_bytes: int


class MultiModelCache:
    """The models of one multi-model endpoint, most recently used last."""

    def __init__(
        self, endpoint: str, config: MultiModelConfig, store: ObjectStore, models: ModelStore
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.store = store
        self.models = models
        self.stats = MultiModelStats()
        self._loaded: OrderedDict[ModelRef, _Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    @property
    def loaded(self) -> list[str]:
        """Loaded models, least recently used first."""
        with self._lock:
            return [str(ref) for ref in self._loaded]

    @property
    def loaded_bytes(self) -> int:
        with self._lock:
            return sum(item.size_bytes for item in self._loaded.values())

    def resolve(self, target: str) -> ModelRef:
        """The version ``target`` names, or a TargetError saying what it should look like."""
        group = self.config.group
        text = target.strip()
        for separator in ("/", "@"):
            if separator in text:
                named_group, _, text = text.rpartition(separator)
                if named_group != group:
                    raise TargetError(
                        f"multi-model endpoint {self.endpoint!r} serves model group {group!r}; "
                        f"target model {target!r} names group {named_group!r}"
                    )
        text = text.removesuffix(".tar.gz")
        if not text.isdigit() or int(text) < 1:
            raise TargetError(
                f"target model {target!r} is not a version of {group!r}: "
                f"use {group}/VERSION, e.g. {group}/1"
            )
        return ModelRef(group, int(text))

    def get(self, target: str) -> tuple[ModelRef, PackagedModel]:
        """The loaded model for ``target``, loading it (and evicting others) if needed."""
        ref = self.resolve(target)
        with self._lock:
            found = self._loaded.get(ref)
            if found is not None:
                self._loaded.move_to_end(ref)
                self.stats.hits += 1
                return ref, found.model
        # One load at a time: concurrent first calls for a model load it once.
        with self._loading:
            with self._lock:
                found = self._loaded.get(ref)
                if found is not None:
                    self._loaded.move_to_end(ref)
                    self.stats.hits += 1
                    return ref, found.model
            loaded = self._load(ref, target)
            with self._lock:
                self._loaded[ref] = loaded
                self.stats.loads += 1
                self._evict()
        return ref, loaded.model

    def _load(self, ref: ModelRef, target: str) -> _Loaded:
        try:
            info = self.models.get_version(ref)
        except NotFoundError:
            raise TargetError(
                f"multi-model endpoint {self.endpoint!r} has no target model {target!r}: "
                f"model group {ref.group!r} has no version {ref.version}"
            ) from None
        try:
            model = load_package(self.store, info.artifact_uri, info.sha256)
        except ShipyardError as exc:
            # The caller gets a ModelError naming it; the endpoint keeps serving other models.
            raise ModelFault(f"could not load target model {target!r}: {exc}") from exc
        artifact = model.manifest["artifact"]["name"]
        folder = self.store.key_of(info.artifact_uri).rsplit("/", 1)[0]
        size = self.store.fs.size(self.store.path(f"{folder}/{artifact}"))
        return _Loaded(model, int(size or 0))

    def _evict(self) -> None:
        limit_bytes = self.config.max_bytes
        while len(self._loaded) > 1 and (
            len(self._loaded) > self.config.max_models
            or (
                limit_bytes is not None
                and sum(i.size_bytes for i in self._loaded.values()) > limit_bytes
            )
        ):
            ref, _ = self._loaded.popitem(last=False)
            self.stats.evictions.append(str(ref))
