"""Stored endpoint configs: immutable, named, kept in the metadata store with an audit event.

A config row holds the SageMaker-shaped document of :mod:`shipyard.serve.endpoint_config`.
Serve's own state may ride along under keys the public API never reads (the blue/green
deployment progress of :mod:`shipyard.serve.blue_green`), so it is committed in the same row
as the traffic split it describes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shipyard.core.errors import NotFoundError, StateError
from shipyard.core.names import check_name
from shipyard.serve.endpoint_config import (
    EndpointConfig,
    VariantSpec,
    config_from_document,
    config_to_document,
)
from shipyard.storage import MetadataStore, record_event, utcnow
from shipyard.storage.schema import endpoint_configs

PRIVATE_KEYS = ("BlueGreenDeployment",)  # serve's state, kept in config.extra


class EndpointConfigStore:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    def create(self, config: EndpointConfig, *, actor: str) -> EndpointConfig:
        """SageMaker's CreateEndpointConfig: names are never reused."""
        check_name("endpoint config", config.name)
        if self.find(config.name) is not None:
            raise StateError(
                f"endpoint config {config.name!r} already exists; configs are immutable, "
                "create one with a new name"
            )
        self.store(config, actor=actor)
        return config

    def describe(self, name: str) -> EndpointConfig:
        found = self.find(name)
        if found is None:
            raise NotFoundError(f"endpoint config {name!r} does not exist")
        return found

    def list(self) -> list[EndpointConfig]:
        with self.meta.reading() as connection:
            rows = connection.execute(
                sa.select(endpoint_configs.c.name, endpoint_configs.c.variants).order_by(
                    endpoint_configs.c.created_at
                )
            ).all()
        return [parse_stored(name, stored) for name, stored in rows]

    def find(self, name: str) -> EndpointConfig | None:
        with self.meta.reading() as connection:
            stored = connection.execute(
                sa.select(endpoint_configs.c.variants).where(endpoint_configs.c.name == name)
            ).scalar()
        return None if stored is None else parse_stored(name, stored)

    def store(self, config: EndpointConfig, *, actor: str) -> None:
        document = config_to_document(config)
        document.update({k: v for k, v in config.extra.items() if k in PRIVATE_KEYS})
        with self.meta.transaction() as connection:
            connection.execute(
                endpoint_configs.insert().values(
                    name=config.name, variants=document, created_at=utcnow()
                )
            )
            record_event(
                connection,
                entity_kind="endpoint_config",
                entity_id=config.name,
                action="create",
                actor=actor,
                details={"variants": variant_dicts(config)},
            )


def variant_dicts(config: EndpointConfig) -> list[dict[str, Any]]:
    shadow = [] if config.shadow is None else [{**config.shadow.to_dict(), "shadow": True}]
    return [*(v.to_dict() for v in config.variants), *shadow]


def parse_stored(name: str, stored: Any) -> EndpointConfig:
    """A stored config: a SageMaker-shaped document, or the bare variant list of old rows."""
    if isinstance(stored, list):
        return EndpointConfig(name, tuple(VariantSpec.from_dict(v) for v in stored))
    config = config_from_document(stored, name=name)
    private = {k: stored[k] for k in PRIVATE_KEYS if k in stored}
    if private:
        config.extra.update(private)
    return config
