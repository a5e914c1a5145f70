"""Endpoint rows in the metadata store: the status machine's states, reading a row into a
description, and committing a status change together with its audit event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shipyard.serve.endpoint_config import EndpointConfig, VariantSpec
from shipyard.serve.endpoint_store import parse_stored, variant_dicts
from shipyard.storage import MetadataStore, record_event, utcnow
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


def read_endpoint(meta: MetadataStore, name: str) -> EndpointDescription | None:
    with meta.reading() as connection:
        row = connection.execute(
            sa.select(endpoints, endpoint_configs.c.variants)
            .join(endpoint_configs, endpoint_configs.c.name == endpoints.c.config_name)
            .where(endpoints.c.name == name)
        ).first()
    if row is None:
        return None
    m = row._mapping
    config = parse_stored(m["config_name"], m["variants"])
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


def endpoint_names(meta: MetadataStore, statuses: tuple[str, ...] | None = None) -> list[str]:
    query = sa.select(endpoints.c.name).order_by(endpoints.c.name)
    if statuses is not None:
        query = query.where(endpoints.c.status.in_(statuses))
    with meta.reading() as connection:
        return [n for (n,) in connection.execute(query)]


def write_status(
    meta: MetadataStore,
    name: str,
    status: str,
    *,
    reason: str,
    actor: str,
    config_name: str | None = None,
    details: dict[str, Any] | None = None,
    action: str = "status",
) -> None:
    """Commit ``name``'s new status (and config) with its audit event, in one transaction."""
    with meta.transaction() as connection:
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
            action=action,
            from_state=previous,
            to_state=status,
            reason=reason,
            actor=actor,
            details={**(details or {}), **({"config": config_name} if config_name else {})},
        )


def insert_endpoint(
    meta: MetadataStore, name: str, config: EndpointConfig, *, actor: str, reason: str
) -> None:
    now = utcnow()
    with meta.transaction() as connection:
        connection.execute(
            endpoints.insert().values(
                name=name, status=CREATING, config_name=config.name, created_at=now,
                updated_at=now,
            )
        )  # fmt: skip
        record_event(
            connection,
            entity_kind="endpoint",
            entity_id=name,
            action="create",
            to_state=CREATING,
            reason=reason,
            actor=actor,
            details={"config": config.name, "variants": variant_dicts(config)},
        )


def delete_endpoint_row(
    meta: MetadataStore, current: EndpointDescription, *, actor: str, reason: str
) -> None:
    with meta.transaction() as connection:
        connection.execute(endpoints.delete().where(endpoints.c.name == current.name))
        record_event(
            connection,
            entity_kind="endpoint",
            entity_id=current.name,
            action="delete",
            from_state=current.status,
            to_state="Deleted",
            reason=reason,
            actor=actor,
            details={"config": current.config_name},
        )
