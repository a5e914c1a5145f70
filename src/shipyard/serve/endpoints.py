"""Endpoints and endpoint configs: their state machine, persistence, and loaded runtimes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import anyio
import sqlalchemy as sa

from shipyard.core.errors import (
    InvalidRequestError,
    NotFoundError,
    ShipyardError,
    StateError,
    StorageError,
)
from shipyard.core.interfaces import MetricsSink, ModelStore
from shipyard.core.names import check_name
from shipyard.core.package import load_package
from shipyard.core.types import ModelRef
from shipyard.serve.capture import CapturePolicy, CaptureWriter, Payload
from shipyard.serve.endpoint_config import (
    EndpointConfig,
    VariantSpec,
    config_from_document,
    config_to_document,
)
from shipyard.serve.errors import InvocationTimeout
from shipyard.serve.multimodel import MultiModelCache
from shipyard.serve.runtime import EndpointRuntime, LoadedVariant, RowsDecoder, Scored, Target
from shipyard.serve.shadow import ShadowVariant
from shipyard.serve.sidecars import EndpointSidecars
from shipyard.storage import MetadataStore, ObjectStore, record_event, utcnow
from shipyard.storage.schema import endpoint_configs, endpoints

CREATING = "Creating"
IN_SERVICE = "InService"
UPDATING = "Updating"
ROLLING_BACK = "RollingBack"
FAILED = "Failed"


@dataclass(frozen=True)
class EndpointDescription:
    name: str
    status: str
    config_name: str
    variants: list[VariantSpec]
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)
    config: EndpointConfig | None = None


class EndpointService:
    """Creates, updates, deletes and serves endpoints; implements ``TrafficController``.

    An endpoint serves one stored endpoint config (see :mod:`shipyard.serve.endpoint_config`);
    a change is a new config, loaded beside the old one and swapped in only once it loaded.
    """

    def __init__(
        self,
        meta: MetadataStore,
        store: ObjectStore,
        models: ModelStore,
        metrics: MetricsSink,
        *,
        capture_policy: CapturePolicy | None = None,
    ) -> None:
        self.meta = meta
        self.store = store
        self.models = models
        self.metrics = metrics
        self.capture = CaptureWriter(store, capture_policy or CapturePolicy())
        self._runtimes: dict[str, EndpointRuntime] = {}
        self._sidecars: dict[str, EndpointSidecars] = {}
        self._lock = threading.RLock()

    # endpoint configs --------------------------------------------------------------

    def create_endpoint_config(
        self, config: EndpointConfig, *, actor: str = "system"
    ) -> EndpointConfig:
        """Store a named config (SageMaker's CreateEndpointConfig); names are never reused."""
        check_name("endpoint config", config.name)
        with self._lock:
            if self._config_document(config.name) is not None:
                raise StateError(
                    f"endpoint config {config.name!r} already exists; configs are immutable, "
                    "create one with a new name"
                )
            self._store_config(config, actor=actor)
        return config

    def describe_endpoint_config(self, name: str) -> EndpointConfig:
        document = self._config_document(name)
        if document is None:
            raise NotFoundError(f"endpoint config {name!r} does not exist")
        return document

    def list_endpoint_configs(self) -> list[EndpointConfig]:
        with self.meta.reading() as connection:
            names = connection.execute(
                sa.select(endpoint_configs.c.name).order_by(endpoint_configs.c.created_at)
            )
            found = [n for (n,) in names]
        return [self.describe_endpoint_config(n) for n in found]

    # endpoints -----------------------------------------------------------------------

    def create_endpoint(
        self,
        name: str,
        variants: list[VariantSpec] | None = None,
        *,
        config_name: str | None = None,
        actor: str = "system",
        reason: str = "",
    ) -> EndpointDescription:
        """Create ``name`` from ``variants`` (an unnamed config) or a stored ``config_name``.

        A config that cannot load (a model whose sha256 does not match, say) leaves the
        endpoint Failed with the reason, and raises it.
        """
        check_name("endpoint", name)
        with self._lock:
            if self._exists(name):
                raise StateError(f"endpoint {name!r} already exists; update it instead")
            config = self._config_for(name, variants, config_name, actor)
            now = utcnow()
            with self.meta.transaction() as connection:
                connection.execute(
                    endpoints.insert().values(
                        name=name,
                        status=CREATING,
                        config_name=config.name,
                        created_at=now,
                        updated_at=now,
                    )
                )
                record_event(
                    connection,
                    entity_kind="endpoint",
                    entity_id=name,
                    action="create",
                    to_state=CREATING,
                    reason=reason,
                    actor=actor,
                    details={"config": config.name, "variants": _variant_dicts(config)},
                )
            try:
                self._activate(name, config)
            except ShipyardError as exc:
                self._set_status(name, FAILED, reason=str(exc), actor=actor)
                raise
            self._set_status(name, IN_SERVICE, reason="models loaded", actor=actor)
            return self.describe(name)

    def update_endpoint(
        self,
        name: str,
        variants: list[VariantSpec] | None = None,
        *,
        config_name: str | None = None,
        actor: str = "system",
        reason: str = "",
        status_during: str = UPDATING,
    ) -> EndpointDescription:
        """Load the new config beside the old one, then swap; the old one keeps serving."""
        with self._lock:
            current = self.describe(name)
            if current.status not in (IN_SERVICE,):
                raise StateError(f"endpoint {name!r} is {current.status}; it cannot be updated")
            config = self._config_for(name, variants, config_name, actor)
            self._set_status(name, status_during, reason=reason, actor=actor)
            try:
                self._activate(name, config)
            except ShipyardError as exc:
                self._set_status(
                    name,
                    IN_SERVICE,
                    reason=f"update to {config.name} failed, still serving "
                    f"{current.config_name}: {exc}",
                    actor=actor,
                )
                raise
            self._set_status(
                name,
                IN_SERVICE,
                reason=reason,
                actor=actor,
                config_name=config.name,
                details={"variants": _variant_dicts(config)},
            )
            return self.describe(name)

    def delete_endpoint(self, name: str, *, actor: str = "system", reason: str = "") -> None:
        """Stop serving ``name`` and forget it; its configs stay (SageMaker's DeleteEndpoint)."""
        with self._lock:
            current = self.describe(name)
            self._runtimes.pop(name, None)
            sidecars = self._sidecars.pop(name, None)
            if sidecars is not None:
                sidecars.close()
            self.capture.flush()
            with self.meta.transaction() as connection:
                connection.execute(endpoints.delete().where(endpoints.c.name == name))
                record_event(
                    connection,
                    entity_kind="endpoint",
                    entity_id=name,
                    action="delete",
                    from_state=current.status,
                    to_state="Deleted",
                    reason=reason,
                    actor=actor,
                    details={"config": current.config_name},
                )

    def describe(self, name: str) -> EndpointDescription:
        with self.meta.reading() as connection:
            row = connection.execute(
                sa.select(endpoints, endpoint_configs.c.variants)
                .join(endpoint_configs, endpoint_configs.c.name == endpoints.c.config_name)
                .where(endpoints.c.name == name)
            ).first()
        if row is None:
            known = ", ".join(d.name for d in self.list_endpoints()) or "none"
            raise NotFoundError(f"endpoint {name!r} does not exist; endpoints: {known}")
        m = row._mapping
        config = _parse_stored(m["config_name"], m["variants"])
        return EndpointDescription(
            name=m["name"],
            status=m["status"],
            config_name=m["config_name"],
            variants=list(config.variants),
            failure_reason=m["failure_reason"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            config=config,
        )

    def list_endpoints(self) -> list[EndpointDescription]:
        with self.meta.reading() as connection:
            names = connection.execute(sa.select(endpoints.c.name).order_by(endpoints.c.name))
            found = [n for (n,) in names]
        return [self.describe(n) for n in found]

    def load_in_service(self) -> list[str]:
        """Load every endpoint that was serving (at server start); returns the names loaded.

        An endpoint left Updating or RollingBack by a crash serves its last committed config
        (the config name only advances once a change has succeeded) and is InService again.
        """
        loaded = []
        for description in self.list_endpoints():
            serving = (IN_SERVICE, UPDATING, ROLLING_BACK)
            if description.status not in serving or description.name in self.serving:
                continue
            assert description.config is not None
            self._activate(description.name, description.config)
            if description.status != IN_SERVICE:
                self._set_status(
                    description.name,
                    IN_SERVICE,
                    reason=f"restarted while {description.status}; serving the last committed "
                    f"config {description.config_name}",
                    actor="system",
                )
            loaded.append(description.name)
        return loaded

    def runtime(self, name: str) -> EndpointRuntime:
        runtime = self._runtimes.get(name)
        if runtime is None:
            known = ", ".join(self.serving) or "none"
            raise NotFoundError(
                f"endpoint {name!r} is not in service here; endpoints in service: {known}"
            )
        return runtime

    def check_serving(self, name: str) -> None:
        """Raise NotFoundError unless ``name`` is in service here (any kind of endpoint)."""
        if name not in self._runtimes and name not in self._sidecars:
            self.runtime(name)

    def sidecars(self, name: str) -> EndpointSidecars | None:
        """The endpoint's shadow, capture and multi-model state, if it has any."""
        return self._sidecars.get(name)

    @property
    def serving(self) -> list[str]:
        multi = [n for n, s in self._sidecars.items() if s.multi is not None]
        return sorted({*self._runtimes, *multi})

    def follow(self, name: str) -> None:
        """Load and serve ``name``'s committed config here, leaving the metadata alone: worker
        processes follow the supervisor's endpoint changes this way (serve.workers)."""
        config = self.describe(name).config
        assert config is not None
        with self._lock:
            self._activate(name, config)

    def stop_serving(self, name: str) -> None:
        """Forget what ``name`` loaded here (a worker whose endpoint left service)."""
        with self._lock:
            self._runtimes.pop(name, None)
            sidecars = self._sidecars.pop(name, None)
        if sidecars is not None:
            sidecars.close()

    def close(self) -> None:
        """Stop shadows and write out every captured record (server shutdown)."""
        for sidecars in self._sidecars.values():
            sidecars.close()
        self.capture.close()

    async def invoke(
        self,
        name: str,
        rows: RowsDecoder,
        target: Target,
        *,
        timeout_s: float,
        payload: Payload | None = None,
    ) -> Scored:
        """Score one request's rows on endpoint ``name``: the one call every protocol makes.

        Scoring runs off the event loop, micro-batched with concurrent requests for the same
        variant, so a slow model never stalls other requests or ``/ping``; past ``timeout_s``
        the caller gets :class:`InvocationTimeout` (the batch finishes in the background).
        """
        sidecars = self._sidecars.get(name)
        if sidecars is not None and sidecars.multi is not None:
            scored = await self._invoke_multi(sidecars, name, rows, target, timeout_s)
        else:
            runtime = self.runtime(name)
            deadline = time.monotonic() + timeout_s
            try:
                with anyio.fail_after(timeout_s):
                    scored = await runtime.submit(rows, target, deadline)
            except TimeoutError:
                raise InvocationTimeout(name, timeout_s) from None
        if sidecars is not None:
            # Only sampling and a queue put: the shadow and capture run in the background.
            sidecars.after(rows, payload, scored)
        return scored

    async def _invoke_multi(
        self,
        sidecars: EndpointSidecars,
        name: str,
        rows: RowsDecoder,
        target: Target,
        timeout_s: float,
    ) -> Scored:
        variant = sidecars.variant_name
        try:
            with anyio.fail_after(timeout_s):
                return await anyio.to_thread.run_sync(
                    sidecars.score_multi, rows, target, variant, self.metrics,
                    abandon_on_cancel=True,
                )  # fmt: skip
        except TimeoutError:
            raise InvocationTimeout(name, timeout_s) from None

    # TrafficController protocol -------------------------------------------------------

    def serving_versions(self, endpoint: str) -> dict[str, ModelRef]:
        return {v.name: v.model for v in self.describe(endpoint).variants}

    def route_all(self, endpoint: str, ref: ModelRef, *, actor: str, reason: str) -> None:
        """Serve ``ref`` alone; the shadow and capture settings of the config carry over."""
        current = self.describe(endpoint)
        assert current.config is not None
        name = current.variants[0].name if current.variants else "AllTraffic"
        first = current.variants[0] if current.variants else None
        count = first.instance_count if first is not None else 1
        config = replace(
            current.config,
            name=f"{endpoint}-{time.time_ns()}",
            variants=(VariantSpec(name, ref, 1.0, count),),
        )
        self._store_config(config, actor=actor)
        self.update_endpoint(
            endpoint,
            config_name=config.name,
            actor=actor,
            reason=reason,
            status_during=ROLLING_BACK if actor.startswith("rollback") else UPDATING,
        )

    # internals --------------------------------------------------------------------------

    def _exists(self, name: str) -> bool:
        with self.meta.reading() as connection:
            return (
                connection.execute(
                    sa.select(endpoints.c.name).where(endpoints.c.name == name)
                ).first()
                is not None
            )

    def _config_for(
        self,
        endpoint: str,
        variants: list[VariantSpec] | None,
        config_name: str | None,
        actor: str,
    ) -> EndpointConfig:
        if (variants is None) == (config_name is None):
            raise InvalidRequestError("give either production variants or an endpoint config name")
        if config_name is not None:
            return self.describe_endpoint_config(config_name)
        assert variants is not None
        if not variants:
            raise StateError(f"endpoint {endpoint!r} needs at least one production variant")
        for variant in variants:
            check_name("variant", variant.name)
        config = EndpointConfig(f"{endpoint}-{time.time_ns()}", tuple(variants))
        self._store_config(config, actor=actor)
        return config

    def _store_config(self, config: EndpointConfig, *, actor: str) -> None:
        with self.meta.transaction() as connection:
            connection.execute(
                endpoint_configs.insert().values(
                    name=config.name, variants=config_to_document(config), created_at=utcnow()
                )
            )
            record_event(
                connection,
                entity_kind="endpoint_config",
                entity_id=config.name,
                action="create",
                actor=actor,
                details={"variants": _variant_dicts(config)},
            )

    def _config_document(self, name: str) -> EndpointConfig | None:
        with self.meta.reading() as connection:
            stored = connection.execute(
                sa.select(endpoint_configs.c.variants).where(endpoint_configs.c.name == name)
            ).scalar()
        return None if stored is None else _parse_stored(name, stored)

    def _activate(self, name: str, config: EndpointConfig) -> None:
        """Load everything ``config`` needs, then put it in service at once (or raise)."""
        multi = (
            None
            if config.multi_model is None
            else MultiModelCache(name, config.multi_model, self.store, self.models)
        )
        loaded = [] if multi is not None else self._load(list(config.variants))
        shadow_loaded = None if config.shadow is None else self._load([config.shadow])[0]
        sidecars = EndpointSidecars(
            name, self.capture, config.data_capture, multi, variant_name=config.variants[0].name
        )
        if loaded:
            sidecars.columns = tuple(loaded[0].model.input_types)
        if shadow_loaded is not None:
            sidecars.shadow = ShadowVariant(
                name,
                shadow_loaded.name,
                shadow_loaded.ref,
                shadow_loaded.model,
                sampling_percentage=config.shadow_sampling_percentage,
                on_scored=sidecars.on_shadow_scored,
            )
        if multi is None:
            runtime = self._runtimes.get(name)
            if runtime is None:
                self._runtimes[name] = EndpointRuntime(name, loaded, self.metrics)
            else:
                runtime.swap(loaded)
        else:
            self._runtimes.pop(name, None)
        previous = self._sidecars.get(name)
        if config.shadow is None and config.data_capture is None and multi is None:
            self._sidecars.pop(name, None)
        else:
            self._sidecars[name] = sidecars
        if previous is not None:
            previous.close()

    def _load(self, variants: list[VariantSpec]) -> list[LoadedVariant]:
        loaded = []
        for spec in variants:
            info = self.models.get_version(spec.model)
            try:
                model = load_package(self.store, info.artifact_uri, info.sha256)
            except ShipyardError:
                raise
            except Exception as exc:  # a corrupt model file must not leave the endpoint stuck
                raise StorageError(
                    f"could not load {spec.model} from {info.artifact_uri}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            loaded.append(LoadedVariant(spec.name, spec.model, spec.weight, model))
        return loaded

    def _set_status(
        self,
        name: str,
        status: str,
        *,
        reason: str,
        actor: str,
        config_name: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        with self.meta.transaction() as connection:
            previous = connection.execute(
                sa.select(endpoints.c.status).where(endpoints.c.name == name)
            ).scalar()
            values: dict[str, Any] = {
                "status": status,
                "updated_at": utcnow(),
                "failure_reason": reason if status == FAILED else None,
            }
            if config_name is not None:
                values["config_name"] = config_name
            connection.execute(endpoints.update().where(endpoints.c.name == name).values(values))
            record_event(
                connection,
                entity_kind="endpoint",
                entity_id=name,
                action="status",
                from_state=previous,
                to_state=status,
                reason=reason,
                actor=actor,
                details={**(details or {}), **({"config": config_name} if config_name else {})},
            )


def _variant_dicts(config: EndpointConfig) -> list[dict[str, Any]]:
    shadow = [] if config.shadow is None else [{**config.shadow.to_dict(), "shadow": True}]
    return [*(v.to_dict() for v in config.variants), *shadow]


def _parse_stored(name: str, stored: Any) -> EndpointConfig:
    """A stored config: a SageMaker-shaped document, or the bare variant list of old rows."""
    if isinstance(stored, list):
        return EndpointConfig(name, tuple(VariantSpec.from_dict(v) for v in stored))
    return config_from_document(stored, name=name)
