"""Multi-model endpoints: model versions loaded on first call, evicted by LRU.

A request names its model with ``X-Amzn-SageMaker-Target-Model`` as ``GROUP/VERSION``,
``GROUP@VERSION`` or just ``VERSION``. The endpoint serves the versions of one model group, or,
when its ``ModelPackageGroupName`` ends with ``*`` (``fraud-*``), of every group whose name
starts with that prefix, the way a SageMaker multi-model endpoint serves every artifact under
its ``ModelDataUrl`` prefix: there a target names its group (``fraud-eu/3``). The first call
loads the package (sha256 checked against the registry); past ``max_models`` models or
``max_bytes`` of package bytes, the least recently used model is unloaded, whatever its group.

With worker processes each worker holds its own cache. Each sends its :func:`cache_state`
to the supervisor over the metrics channel, where :class:`WorkerCacheStates` keeps the last
one per worker, so DescribeEndpoint and the loaded-models gauge there show every worker's.
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

    @property
    def prefix(self) -> str | None:
        """The group-name prefix this endpoint serves, or None when it serves one group."""
        group = self.config.group
        return group[:-1] if group.endswith("*") else None

    @property
    def example(self) -> str:
        """A target model this endpoint would accept, for error messages."""
        prefix = self.prefix
        return f"{self.config.group}/1" if prefix is None else f"{prefix}GROUP/1"

    def resolve(self, target: str) -> ModelRef:
        """The version ``target`` names, or a TargetError saying what it should look like."""
        prefix, group = self.prefix, self.config.group
        text = target.strip()
        named_group: str | None = None
        for separator in ("/", "@"):
            if separator in text:
                named_group, _, text = text.rpartition(separator)
                break
        if prefix is None and named_group not in (None, group):
            raise TargetError(
                f"multi-model endpoint {self.endpoint!r} serves model group {group!r}; "
                f"target model {target!r} names group {named_group!r}"
            )
        if prefix is not None:
            if named_group is None or not named_group.startswith(prefix) or "*" in named_group:
                raise TargetError(
                    f"multi-model endpoint {self.endpoint!r} serves the model groups named "
                    f"{group!r}; target model {target!r} must name one as GROUP/VERSION, "
                    f"e.g. {self.example}"
                )
            group = named_group
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


EVICTIONS_SENT = 100  # a worker's most recent evictions in its state (the list only grows)


@dataclass(frozen=True)
class CacheState:
    """What one process's cache of an endpoint holds and has done (picklable, comparable)."""

    loaded: tuple[str, ...]  # least recently used first
    loaded_bytes: int = 0
    loads: int = 0
    hits: int = 0
    evicted: tuple[str, ...] = ()

    def to_document(self) -> dict[str, object]:
        return {
            "LoadedModels": list(self.loaded),
            "LoadedBytes": self.loaded_bytes,
            "Loads": self.loads,
            "CacheHits": self.hits,
            "Evicted": list(self.evicted),
        }


def cache_state(cache: MultiModelCache, evictions: int | None = None) -> CacheState:
    """``cache``'s state; with ``evictions``, only that many of the most recent evictions."""
    evicted = cache.stats.evictions
    return CacheState(
        tuple(cache.loaded), cache.loaded_bytes, cache.stats.loads, cache.stats.hits,
        tuple(evicted if evictions is None else evicted[-evictions:]),
    )  # fmt: skip


class WorkerCacheStates:
    """The supervisor's view of its workers' caches: the last state each worker sent."""

    def __init__(self) -> None:
        self._by_pid: dict[int, dict[str, CacheState]] = {}
        self._lock = threading.Lock()

    def apply(self, pid: int, states: dict[str, CacheState]) -> None:
        with self._lock:
            self._by_pid[pid] = states

    def retain(self, pids: list[int]) -> None:
        """Drop the states of workers no longer running: their models went with them."""
        with self._lock:
            for pid in set(self._by_pid) - set(pids):
                del self._by_pid[pid]

    def combined(self, endpoint: str, own: MultiModelCache | None) -> CacheState | None:
        """This process's and every worker's cache of ``endpoint`` as one: each model loaded
        anywhere (once), the bytes, loads, hits and evictions summed over the processes."""
        with self._lock:
            states = [by[endpoint] for by in self._by_pid.values() if endpoint in by]
        if own is not None:
            states.insert(0, cache_state(own))
        if not states:
            return None
        return CacheState(
            tuple(dict.fromkeys(ref for state in states for ref in state.loaded)),
            sum(state.loaded_bytes for state in states),
            sum(state.loads for state in states),
            sum(state.hits for state in states),
            tuple(ref for state in states for ref in state.evicted),
        )
