"""Model package groups and their numbered versions, approval status and aliases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard.core.errors import InvalidRequestError, NotFoundError, StateError
from shipyard.core.names import check_name
from shipyard.core.types import ModelRef, ModelVersionInfo
from shipyard.storage import MetadataStore, insert_if_absent, record_event, utcnow
from shipyard.storage.schema import model_aliases, model_package_groups, model_versions

PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)
# MLflow users know fixed stages; the words map onto aliases of the same name.
STAGE_ALIASES = {"Staging": "staging", "Production": "production"}


@dataclass(frozen=True)
class ModelVersion:
    """A registered version, as the registry's users see it."""

    group: str
    version: int
    artifact_uri: str
    sha256: str
    framework: str
    framework_version: str
    approval_status: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    lineage: dict[str, Any]
    signature: dict[str, Any]
    aliases: tuple[str, ...]
    created_at: datetime

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.group, self.version)

    def info(self) -> ModelVersionInfo:
        return ModelVersionInfo(
            self.ref, self.artifact_uri, self.sha256, self.approval_status, self.metrics
        )


class ModelRegistry:
    """Versions models; implements the ``ModelStore`` protocol that serve and monitor use."""

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    def register(
        self,
        group: str,
        *,
        artifact_uri: str,
        sha256: str,
        framework: str,
        framework_version: str,
        signature: dict[str, Any],
        metrics: dict[str, Any],
        params: dict[str, Any],
        lineage: dict[str, Any],
        actor: str = "system",
    ) -> ModelVersion:
        """Add the next version to ``group`` (created on first use), PendingManualApproval."""
        check_name("model package group", group)
        now = utcnow()
        with self.meta.transaction() as connection:
            # Create the group row if needed, then lock it: SELECT ... FOR UPDATE on a row
            # that does not exist yet would lock nothing, and two first versions would race.
            insert_if_absent(
                connection,
                model_package_groups,
                name=group,
                description="",
                next_version=1,
                created_at=now,
            )
            version = int(
                connection.execute(
                    sa.select(model_package_groups.c.next_version)
                    .where(model_package_groups.c.name == group)
                    .with_for_update()
                ).scalar_one()
            )
            # Numbers come from the group row, never from max(version): a deleted version's
            # number is never reused.
            connection.execute(
                model_package_groups.update()
                .where(model_package_groups.c.name == group)
                .values(next_version=version + 1)
            )
            connection.execute(
                model_versions.insert().values(
                    group_name=group,
                    version=version,
                    artifact_uri=artifact_uri,
                    sha256=sha256,
                    framework=framework,
                    framework_version=framework_version,
                    signature=signature,
                    metrics=metrics,
                    params=params,
                    lineage=lineage,
                    approval_status=PENDING,
                    description="",
                    created_at=now,
                )
            )
            record_event(
                connection,
                entity_kind="model",
                entity_id=f"{group}@{version}",
                action="register",
                to_state=PENDING,
                actor=actor,
                details={"artifact_uri": artifact_uri, "sha256": sha256, "metrics": metrics},
            )
        return self.get(group, version)

    def set_approval(
        self, group: str, version: int, status: str, *, actor: str = "system", reason: str = ""
    ) -> ModelVersion:
        if status not in APPROVAL_STATUSES:
            raise InvalidRequestError(
                f"approval status {status!r} is not one of {', '.join(APPROVAL_STATUSES)}"
            )
        with self.meta.transaction() as connection:
            current = self._status(connection, group, version)
            if current != status:
                connection.execute(
                    model_versions.update()
                    .where(
                        (model_versions.c.group_name == group)
                        & (model_versions.c.version == version)
                    )
                    .values(approval_status=status)
                )
                record_event(
                    connection,
                    entity_kind="model",
                    entity_id=f"{group}@{version}",
                    action="approval",
                    from_state=current,
                    to_state=status,
                    reason=reason,
                    actor=actor,
                )
        return self.get(group, version)

    def approve(
        self, group: str, version: int, *, actor: str = "system", reason: str = ""
    ) -> ModelVersion:
        return self.set_approval(group, version, APPROVED, actor=actor, reason=reason)

    def reject(
        self, group: str, version: int, *, actor: str = "system", reason: str = ""
    ) -> ModelVersion:
        return self.set_approval(group, version, REJECTED, actor=actor, reason=reason)

    def set_alias(self, group: str, alias: str, version: int, *, actor: str, reason: str) -> None:
        """Point ``alias`` (e.g. ``production``) at ``version``; only Approved versions qualify."""
        alias = STAGE_ALIASES.get(alias, alias)
        check_name("alias", alias)
        with self.meta.transaction() as connection:
            # One alias change per group at a time: lock the group row.
            connection.execute(
                sa.select(model_package_groups.c.name)
                .where(model_package_groups.c.name == group)
                .with_for_update()
            )
            status = self._status(connection, group, version)
            if alias == "production" and status != APPROVED:
                raise StateError(
                    f"{group}@{version} is {status}; only an Approved version can be production"
                )
            previous = connection.execute(
                sa.select(model_aliases.c.version).where(
                    (model_aliases.c.group_name == group) & (model_aliases.c.alias == alias)
                )
            ).scalar()
            if previous == version:
                return
            if previous is None:
                connection.execute(
                    model_aliases.insert().values(
                        group_name=group, alias=alias, version=version, updated_at=utcnow()
                    )
                )
            else:
                connection.execute(
                    model_aliases.update()
                    .where((model_aliases.c.group_name == group) & (model_aliases.c.alias == alias))
                    .values(version=version, updated_at=utcnow())
                )
            record_event(
                connection,
                entity_kind="model_alias",
                entity_id=f"{group}/{alias}",
                action="move",
                from_state=None if previous is None else str(previous),
                to_state=str(version),
                reason=reason,
                actor=actor,
            )

    def alias_version(self, group: str, alias: str) -> int | None:
        alias = STAGE_ALIASES.get(alias, alias)
        with self.meta.reading() as connection:
            value = connection.execute(
                sa.select(model_aliases.c.version).where(
                    (model_aliases.c.group_name == group) & (model_aliases.c.alias == alias)
                )
            ).scalar()
        return None if value is None else int(value)

    def get(self, group: str, version: int) -> ModelVersion:
        versions = self._select(
            (model_versions.c.group_name == group) & (model_versions.c.version == version)
        )
        if not versions:
            known = [v.version for v in self.list_versions(group)]
            hint = f"known versions: {known}" if known else f"group {group!r} has no versions"
            raise NotFoundError(f"no version {group}@{version} in the registry; {hint}")
        return versions[0]

    def list_versions(self, group: str | None = None) -> list[ModelVersion]:
        condition = sa.true() if group is None else model_versions.c.group_name == group
        return self._select(condition)

    # ModelStore protocol -------------------------------------------------------------

    def get_version(self, ref: ModelRef) -> ModelVersionInfo:
        return self.get(ref.group, ref.version).info()

    def previous_approved(self, ref: ModelRef) -> ModelVersionInfo | None:
        candidates = [
            v
            for v in self.list_versions(ref.group)
            if v.version < ref.version and v.approval_status == APPROVED
        ]
        return candidates[-1].info() if candidates else None

    # ---------------------------------------------------------------------------------

    def _status(self, connection: Connection, group: str, version: int) -> str:
        status = connection.execute(
            sa.select(model_versions.c.approval_status)
            .where((model_versions.c.group_name == group) & (model_versions.c.version == version))
            .with_for_update()
        ).scalar()
        if status is None:
            raise NotFoundError(f"no version {group}@{version} in the registry")
        return str(status)

    def _select(self, condition: Any) -> list[ModelVersion]:
        with self.meta.reading() as connection:
            rows = connection.execute(
                sa.select(model_versions)
                .where(condition)
                .order_by(model_versions.c.group_name, model_versions.c.version)
            ).all()
            alias_rows = connection.execute(sa.select(model_aliases)).all()
        aliases: dict[tuple[str, int], list[str]] = {}
        for a in alias_rows:
            aliases.setdefault((a.group_name, a.version), []).append(a.alias)
        return [
            ModelVersion(
                group=r.group_name,
                version=r.version,
                artifact_uri=r.artifact_uri,
                sha256=r.sha256,
                framework=r.framework,
                framework_version=r.framework_version,
                approval_status=r.approval_status,
                metrics=dict(r.metrics),
                params=dict(r.params),
                lineage=dict(r.lineage),
                signature=dict(r.signature),
                aliases=tuple(sorted(aliases.get((r.group_name, r.version), []))),
                created_at=r.created_at,
            )
            for r in rows
        ]
