"""Model package groups and their numbered versions, approval status and aliases.

Every change runs in one transaction together with its audit event, so the events table is
a complete history: replaying a group's alias events gives its aliases as they are.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shipyard.core.errors import InvalidRequestError, NotFoundError, StateError
from shipyard.core.names import check_name
from shipyard.core.types import ModelRef, ModelVersionInfo
from shipyard.registry import _rows
from shipyard.registry.model import (
    APPROVED,
    PENDING,
    PRODUCTION,
    REJECTED,
    AliasMove,
    ApprovalChange,
    HistoryEntry,
    ModelGroup,
    ModelVersion,
    alias_name,
    check_alias_target,
    check_note,
    check_registration,
    check_transition,
    check_version_number,
)
from shipyard.storage import MetadataStore, insert_if_absent, record_event, utcnow
from shipyard.storage.schema import events, model_package_groups, model_versions


class ModelRegistry:
    """Versions models; implements the ``ModelStore`` protocol that serve and monitor use.

    Invariants, kept under concurrent callers on SQLite and PostgreSQL: version numbers grow
    by one per group and are never handed out twice (deleted ones included); ``production``
    points only at an Approved version; every change writes one audit event per thing it
    changed, in the same transaction.
    """

    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    # versions ---------------------------------------------------------------------------

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
        """Add the next version to ``group`` (created on first use), PendingManualApproval.

        ``lineage`` names what the version was made from: ``datasets`` (dataset ids),
        ``code_version`` and ``training_job``, or any other keys the trainer records.
        """
        check_name("model package group", group)
        documents = {"signature": signature, "metrics": metrics, "params": params}
        check_registration(
            artifact_uri=artifact_uri,
            sha256=sha256,
            framework=framework,
            framework_version=framework_version,
            documents={**documents, "lineage": lineage},
        )
        check_note(actor, "")
        now = utcnow()
        with self.meta.transaction() as connection:
            version = _rows.take_version_number(connection, group)
            if version is None:
                # First version: create the group row, then take the number from it. Locking
                # a row that does not exist yet would lock nothing, so two first versions
                # would race; inserting first makes the second one wait for the row.
                insert_if_absent(
                    connection,
                    model_package_groups,
                    name=group,
                    description="",
                    next_version=1,
                    created_at=now,
                )
                version = _rows.take_version_number(connection, group)
                assert version is not None
            connection.execute(
                model_versions.insert(),
                {
                    "group_name": group,
                    "version": version,
                    "artifact_uri": artifact_uri,
                    "sha256": sha256,
                    "framework": framework,
                    "framework_version": framework_version,
                    "lineage": lineage,
                    "approval_status": PENDING,
                    "description": "",
                    "created_at": now,
                    **documents,
                },
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
        return ModelVersion(
            group, version, artifact_uri, sha256, framework, framework_version, PENDING,
            dict(metrics), dict(params), dict(lineage), dict(signature), (), now,
        )  # fmt: skip

    def delete_version(self, group: str, version: int, *, actor: str, reason: str) -> None:
        """Remove a version no alias points at; its number is never given out again."""
        check_version_number(version)
        check_note(actor, reason)
        with self.meta.transaction() as connection:
            _rows.lock_group(connection, group)
            status = _rows.version_status(connection, group, version)
            held = _rows.aliases_of(connection, group, version)
            if held:
                raise StateError(
                    f"{group}@{version} is the {', '.join(held)} version; point "
                    f"{'that alias' if len(held) == 1 else 'those aliases'} elsewhere first"
                )
            connection.execute(
                model_versions.delete().where(
                    (model_versions.c.group_name == group) & (model_versions.c.version == version)
                )
            )
            record_event(
                connection,
                entity_kind="model",
                entity_id=f"{group}@{version}",
                action="delete",
                from_state=status,
                reason=reason,
                actor=actor,
            )

    # approval -----------------------------------------------------------------------------

    def update_approval(
        self,
        group: str,
        version: int,
        status: str,
        *,
        actor: str = "system",
        reason: str = "",
        alias: str | None = None,
    ) -> ApprovalChange:
        """Set the approval status; with ``alias``, also point that alias at the version.

        A version that leaves Approved while it is ``production`` hands production to the
        newest version still Approved, in the same transaction (SageMaker's templates
        redeploy that one); if there is none, the change is refused.
        """
        check_version_number(version)
        check_note(actor, reason)
        target_alias = None if alias is None else alias_name(alias)
        if target_alias is not None and status != APPROVED:
            raise InvalidRequestError(f"only an approval can also move an alias, not {status}")
        ref = ModelRef(group, version)
        with self.meta.transaction() as connection:
            _rows.lock_group(connection, group)
            current = _rows.version_status(connection, group, version)
            check_transition(ref, current, status, reason)
            moves: list[AliasMove] = []
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
                    entity_id=str(ref),
                    action="approval",
                    from_state=current,
                    to_state=status,
                    reason=reason,
                    actor=actor,
                )
                if current == APPROVED:
                    moves += self._hand_over_production(connection, ref, actor, reason)
            if target_alias is not None:
                moves.append(
                    _rows.move_alias(
                        connection, group, target_alias, version, actor=actor, reason=reason
                    )
                )
            now = _rows.read_version(connection, group, version)
            assert now is not None  # locked above
        return ApprovalChange(now, current, tuple(m for m in moves if m.moved))

    def record_evaluation(
        self,
        group: str,
        version: int,
        metrics: dict[str, float],
        *,
        outcome: str,
        details: dict[str, Any],
        actor: str = "system",
        reason: str = "",
    ) -> ModelVersion:
        """Add ``metrics`` to the version's (an evaluation after registration) and audit it.

        ``outcome`` (e.g. passed, refused, skipped) is the event's to-state; ``details`` the
        whole evaluation, kept in the audit log.
        """
        check_version_number(version)
        check_note(actor, reason)
        ref = ModelRef(group, version)
        with self.meta.transaction() as connection:
            _rows.lock_group(connection, group)
            current = _rows.read_version(connection, group, version)
            if current is None:
                raise _rows.unknown_version(connection, group, version)
            connection.execute(
                model_versions.update()
                .where(
                    (model_versions.c.group_name == group) & (model_versions.c.version == version)
                )
                .values(metrics={**current.metrics, **metrics})
            )
            record_event(
                connection,
                entity_kind="model",
                entity_id=str(ref),
                action="evaluation",
                to_state=outcome,
                reason=reason,
                actor=actor,
                details=details,
            )
            now = _rows.read_version(connection, group, version)
            assert now is not None  # locked above
        return now

    def check_approval(
        self, group: str, version: int, status: str, *, actor: str = "system", reason: str = ""
    ) -> None:
        """Raise as :meth:`update_approval` would, without changing anything."""
        check_note(actor, reason)
        current = self.get(group, version).approval_status
        check_transition(ModelRef(group, version), current, status, reason)

    def check_promotion(
        self, group: str, version: int, alias: str, *, actor: str = "system", reason: str = ""
    ) -> None:
        """Raise as :meth:`promote` would, without changing anything."""
        check_note(actor, reason)
        current = self.get(group, version).approval_status
        check_alias_target(ModelRef(group, version), alias_name(alias), current)

    def set_approval(
        self, group: str, version: int, status: str, *, actor: str = "system", reason: str = ""
    ) -> ModelVersion:
        return self.update_approval(group, version, status, actor=actor, reason=reason).version

    def approve(
        self, group: str, version: int, *, actor: str = "system", reason: str = ""
    ) -> ModelVersion:
        return self.set_approval(group, version, APPROVED, actor=actor, reason=reason)

    def reject(
        self, group: str, version: int, *, actor: str = "system", reason: str = ""
    ) -> ModelVersion:
        return self.set_approval(group, version, REJECTED, actor=actor, reason=reason)

    # aliases ------------------------------------------------------------------------------

    def promote(
        self, group: str, version: int, alias: str, *, actor: str = "system", reason: str = ""
    ) -> AliasMove:
        """Point ``alias`` (or an MLflow stage word: Production, Staging) at ``version``.

        Only an Approved version can be ``production``.
        """
        alias = alias_name(alias)
        check_version_number(version)
        check_note(actor, reason)
        with self.meta.transaction() as connection:
            _rows.lock_group(connection, group)
            status = _rows.version_status(connection, group, version)
            check_alias_target(ModelRef(group, version), alias, status)
            return _rows.move_alias(connection, group, alias, version, actor=actor, reason=reason)

    def set_alias(self, group: str, alias: str, version: int, *, actor: str, reason: str) -> None:
        """The ``ModelStore`` protocol's name for :meth:`promote`."""
        self.promote(group, version, alias, actor=actor, reason=reason)

    def remove_alias(
        self, group: str, alias: str, *, actor: str = "system", reason: str = ""
    ) -> AliasMove:
        alias = alias_name(alias)
        check_note(actor, reason)
        with self.meta.transaction() as connection:
            _rows.lock_group(connection, group)
            return _rows.move_alias(connection, group, alias, None, actor=actor, reason=reason)

    def rollback(
        self, group: str, *, alias: str = PRODUCTION, actor: str = "system", reason: str = ""
    ) -> AliasMove:
        """Move ``alias`` to the newest Approved version older than the one it points at."""
        alias = alias_name(alias)
        check_note(actor, reason)
        with self.meta.transaction() as connection:
            _rows.lock_group(connection, group)
            current = _rows.alias_target(connection, group, alias)
            if current is None:
                raise StateError(f"{group} has no {alias!r} version to roll back from")
            target = _rows.latest_approved(connection, group, below=current)
            if target is None:
                raise StateError(
                    f"cannot roll back {group}/{alias}: no Approved version older than "
                    f"{group}@{current}"
                )
            return _rows.move_alias(connection, group, alias, target, actor=actor, reason=reason)

    def latest_approved(self, group: str, *, excluding: int | None = None) -> ModelVersion | None:
        """The newest Approved version of ``group`` (other than ``excluding``), if any."""
        with self.meta.reading() as connection:
            found = _rows.latest_approved(connection, group, excluding=excluding)
        return None if found is None else self.get(group, found)

    def alias_version(self, group: str, alias: str) -> int | None:
        with self.meta.reading() as connection:
            return _rows.alias_target(connection, group, alias_name(alias))

    # reads --------------------------------------------------------------------------------

    def get(self, group: str, version: int) -> ModelVersion:
        check_version_number(version)
        with self.meta.reading() as connection:
            found = _rows.read_version(connection, group, version)
            if found is None:
                raise _rows.unknown_version(connection, group, version)
        return found

    def get_by_alias(self, group: str, alias: str) -> ModelVersion:
        alias = alias_name(alias)
        version = self.alias_version(group, alias)
        if version is None:
            aliases = self.get_group(group).aliases  # raises for an unknown group
            known = ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items())) or "none"
            raise NotFoundError(f"{group} has no alias {alias!r}; its aliases: {known}")
        return self.get(group, version)

    def list_versions(self, group: str | None = None) -> list[ModelVersion]:
        condition = sa.true() if group is None else model_versions.c.group_name == group
        with self.meta.reading() as connection:
            return _rows.read_versions(connection, condition, group)

    def list_groups(self) -> list[ModelGroup]:
        with self.meta.reading() as connection:
            return _rows.read_groups(connection)

    def get_group(self, name: str) -> ModelGroup:
        for group in self.list_groups():
            if group.name == name:
                return group
        with self.meta.reading() as connection:
            raise _rows.unknown_group(connection, name)

    def history(self, group: str, version: int | None = None) -> list[HistoryEntry]:
        """Every audit event of ``group`` (or of one version and its alias moves), oldest first.

        A deleted version keeps its history.
        """
        self.get_group(group)  # raises for an unknown group
        if version is None:
            subject = events.c.entity_id.like(f"{group}@%") | events.c.entity_id.like(f"{group}/%")
        else:
            number = str(version)
            subject = (events.c.entity_id == f"{group}@{version}") | (
                events.c.entity_id.like(f"{group}/%")
                & ((events.c.from_state == number) | (events.c.to_state == number))
            )
        with self.meta.reading() as connection:
            entries = _rows.read_history(connection, subject)
            if version is not None and not entries:
                raise _rows.unknown_version(connection, group, version)
        return entries

    # ModelStore protocol -------------------------------------------------------------------

    def get_version(self, ref: ModelRef) -> ModelVersionInfo:
        return self.get(ref.group, ref.version).info()

    def previous_approved(self, ref: ModelRef) -> ModelVersionInfo | None:
        with self.meta.reading() as connection:
            found = _rows.latest_approved(connection, ref.group, below=ref.version)
        return None if found is None else self.get(ref.group, found).info()

    # -------------------------------------------------------------------------------------

    def _hand_over_production(
        self, connection: sa.Connection, ref: ModelRef, actor: str, reason: str
    ) -> list[AliasMove]:
        if _rows.alias_target(connection, ref.group, PRODUCTION) != ref.version:
            return []
        successor = _rows.latest_approved(connection, ref.group, excluding=ref.version)
        if successor is None:
            raise StateError(
                f"{ref} is production and no other version of {ref.group} is Approved to take "
                "over; approve a replacement first (or remove the production alias)"
            )
        note = f"{ref} left Approved; production goes to the newest Approved version"
        return [
            _rows.move_alias(
                connection,
                ref.group,
                PRODUCTION,
                successor,
                actor=actor,
                reason=f"{note}: {reason}" if reason else note,
            )
        ]
