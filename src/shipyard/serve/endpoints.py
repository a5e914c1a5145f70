"""Endpoints and endpoint configs: their state machine, persistence, and loaded runtimes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shipyard.core.errors import NotFoundError, ShipyardError, StateError, StorageError
from shipyard.core.interfaces import MetricsSink, ModelStore
from shipyard.core.names import check_name
from shipyard.core.package import load_package
from shipyard.core.types import ModelRef
from shipyard.serve.runtime import EndpointRuntime, LoadedVariant
from shipyard.storage import MetadataStore, ObjectStore, record_event, utcnow
from shipyard.storage.schema import endpoint_configs, endpoints

CREATING = "Creating"
IN_SERVICE = "InService"
UPDATING = "Updating"
ROLLING_BACK = "RollingBack"
FAILED = "Failed"


@dataclass(frozen=True)
class VariantSpec:
    """One production variant: which model version, and its share of traffic."""

    name: str
    model: ModelRef
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.model.group,
            "version": self.model.version,
            "weight": self.weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantSpec:
        return cls(data["name"], ModelRef(data["group"], int(data["version"])), data["weight"])


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


class EndpointService:
    """Creates, updates and serves endpoints; implements the ``TrafficController`` protocol."""

    def __init__(
        self,
        meta: MetadataStore,
        store: ObjectStore,
        models: ModelStore,
        metrics: MetricsSink,
    ) -> None:
        self.meta = meta
        self.store = store
        self.models = models
        self.metrics = metrics
        self._runtimes: dict[str, EndpointRuntime] = {}
        self._lock = threading.RLock()

    # control plane -----------------------------------------------------------------

    def create_endpoint(
        self, name: str, variants: list[VariantSpec], *, actor: str = "system", reason: str = ""
    ) -> EndpointDescription:
        check_name("endpoint", name)
        for variant in variants:
            check_name("variant", variant.name)
        with self._lock:
            if self._exists(name):
                raise StateError(f"endpoint {name!r} already exists; update it instead")
            config = self._write_config(name, variants)
            now = utcnow()
            with self.meta.transaction() as connection:
                connection.execute(
                    endpoints.insert().values(
                        name=name,
                        status=CREATING,
                        config_name=config,
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
                    details={"config": config, "variants": [v.to_dict() for v in variants]},
                )
            try:
                loaded = self._load(variants)
            except ShipyardError as exc:
                self._set_status(name, FAILED, reason=str(exc), actor=actor)
                raise
            self._runtimes[name] = EndpointRuntime(name, loaded, self.metrics)
            self._set_status(name, IN_SERVICE, reason="models loaded", actor=actor)
            return self.describe(name)

    def update_endpoint(
        self,
        name: str,
        variants: list[VariantSpec],
        *,
        actor: str = "system",
        reason: str = "",
        status_during: str = UPDATING,
    ) -> EndpointDescription:
        """Load the new variants beside the old ones, then swap; the old set keeps serving."""
        with self._lock:
            current = self.describe(name)
            if current.status not in (IN_SERVICE,):
                raise StateError(f"endpoint {name!r} is {current.status}; it cannot be updated")
            config = self._write_config(name, variants)
            self._set_status(name, status_during, reason=reason, actor=actor)
            try:
                loaded = self._load(variants)
            except ShipyardError as exc:
                self._set_status(
                    name, IN_SERVICE, reason=f"update failed, still serving: {exc}", actor=actor
                )
                raise
            runtime = self._runtimes.get(name)
            if runtime is None:
                self._runtimes[name] = EndpointRuntime(name, loaded, self.metrics)
            else:
                runtime.swap(loaded)
            self._set_status(
                name,
                IN_SERVICE,
                reason=reason,
                actor=actor,
                config_name=config,
                details={"variants": [v.to_dict() for v in variants]},
            )
            return self.describe(name)

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
        return EndpointDescription(
            name=m["name"],
            status=m["status"],
            config_name=m["config_name"],
            variants=[VariantSpec.from_dict(v) for v in m["variants"]],
            failure_reason=m["failure_reason"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
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
            if description.status not in serving or description.name in self._runtimes:
                continue
            variants = self._load(description.variants)
            self._runtimes[description.name] = EndpointRuntime(
                description.name, variants, self.metrics
            )
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
            known = ", ".join(sorted(self._runtimes)) or "none"
            raise NotFoundError(
                f"endpoint {name!r} is not in service here; endpoints in service: {known}"
            )
        return runtime

    @property
    def serving(self) -> list[str]:
        return sorted(self._runtimes)

    # TrafficController protocol -------------------------------------------------------

    def serving_versions(self, endpoint: str) -> dict[str, ModelRef]:
        return {v.name: v.model for v in self.describe(endpoint).variants}

    def route_all(self, endpoint: str, ref: ModelRef, *, actor: str, reason: str) -> None:
        current = self.describe(endpoint)
        name = current.variants[0].name if current.variants else "AllTraffic"
        self.update_endpoint(
            endpoint,
            [VariantSpec(name, ref, 1.0)],
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

    def _write_config(self, endpoint: str, variants: list[VariantSpec]) -> str:
        if not variants:
            raise StateError(f"endpoint {endpoint!r} needs at least one production variant")
        config = f"{endpoint}-{time.time_ns()}"
        with self.meta.transaction() as connection:
            connection.execute(
                endpoint_configs.insert().values(
                    name=config, variants=[v.to_dict() for v in variants], created_at=utcnow()
                )
            )
        return config

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
