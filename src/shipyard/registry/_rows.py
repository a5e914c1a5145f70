"""Statements the registry runs inside its transactions: locks, lookups, alias moves, reads.

Every writer locks the group row first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), so changes to one group never interleave
and the lock order is always group before version.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard.core.errors import NotFoundError
from shipyard.registry.model import (
    APPROVED,
    AliasMove,
    HistoryEntry,
    ModelGroup,
    ModelVersion,
    as_utc,
)
from shipyard.storage import record_event, utcnow
from shipyard.storage.schema import events, model_aliases, model_package_groups, model_versions

# Numbers come from the group row, never from max(version): a deleted version's number is
# never reused. The UPDATE locks the row until commit, so concurrent registrations queue; a
# failed registration rolls the counter back with everything else, so its number was never
# issued to anyone.
_TAKE_VERSION_NUMBER = (
    model_package_groups.update()
    .where(model_package_groups.c.name == sa.bindparam("group_key"))
    .values(next_version=model_package_groups.c.next_version + 1)
    .returning(model_package_groups.c.next_version)
)


def take_version_number(connection: Connection, group: str) -> int | None:
    """The group's next version number, reserved; None if the group does not exist yet."""
    taken = connection.execute(_TAKE_VERSION_NUMBER, {"group_key": group}).scalar()
    return None if taken is None else int(taken) - 1


def lock_group(connection: Connection, group: str) -> None:
    found = connection.execute(
        sa.select(model_package_groups.c.name)
        .where(model_package_groups.c.name == group)
        .with_for_update()
    ).scalar()
    if found is None:
        raise unknown_group(connection, group)


def unknown_group(connection: Connection, group: str) -> NotFoundError:
    names = connection.execute(
        sa.select(model_package_groups.c.name).order_by(model_package_groups.c.name)
    ).scalars()
    known = ", ".join(names) or "none yet"
    return NotFoundError(f"no model package group {group!r} in the registry; groups: {known}")


def version_status(connection: Connection, group: str, version: int) -> str:
    status = connection.execute(
        sa.select(model_versions.c.approval_status)
        .where((model_versions.c.group_name == group) & (model_versions.c.version == version))
        .with_for_update()
    ).scalar()
    if status is None:
        raise unknown_version(connection, group, version)
    return str(status)


def unknown_version(connection: Connection, group: str, version: int) -> NotFoundError:
    exists = connection.execute(
        sa.select(model_package_groups.c.name).where(model_package_groups.c.name == group)
    ).scalar()
    if exists is None:
        return unknown_group(connection, group)
    numbers = list(
        connection.execute(
            sa.select(model_versions.c.version)
            .where(model_versions.c.group_name == group)
            .order_by(model_versions.c.version)
        ).scalars()
    )
    hint = f"known versions: {_spans(numbers)}" if numbers else f"group {group!r} has no versions"
    return NotFoundError(f"no version {group}@{version} in the registry; {hint}")


def alias_target(connection: Connection, group: str, alias: str) -> int | None:
    value = connection.execute(
        sa.select(model_aliases.c.version).where(
            (model_aliases.c.group_name == group) & (model_aliases.c.alias == alias)
        )
    ).scalar()
    return None if value is None else int(value)


def aliases_of(connection: Connection, group: str, version: int) -> list[str]:
    return list(
        connection.execute(
            sa.select(model_aliases.c.alias)
            .where((model_aliases.c.group_name == group) & (model_aliases.c.version == version))
            .order_by(model_aliases.c.alias)
        ).scalars()
    )


def latest_approved(
    connection: Connection, group: str, *, below: int | None = None, excluding: int | None = None
) -> int | None:
    query = sa.select(sa.func.max(model_versions.c.version)).where(
        (model_versions.c.group_name == group) & (model_versions.c.approval_status == APPROVED)
    )
    if below is not None:
        query = query.where(model_versions.c.version < below)
    if excluding is not None:
        query = query.where(model_versions.c.version != excluding)
    value = connection.execute(query).scalar()
    return None if value is None else int(value)


def move_alias(
    connection: Connection,
    group: str,
    alias: str,
    to_version: int | None,
    *,
    actor: str,
    reason: str,
) -> AliasMove:
    """Point ``alias`` at ``to_version`` (None removes it) and record the move, if any."""
    previous = alias_target(connection, group, alias)
    move = AliasMove(group, alias, previous, to_version)
    if not move.moved:
        return move
    where = (model_aliases.c.group_name == group) & (model_aliases.c.alias == alias)
    if to_version is None:
        connection.execute(model_aliases.delete().where(where))
    elif previous is None:
        connection.execute(
            model_aliases.insert().values(
                group_name=group, alias=alias, version=to_version, updated_at=utcnow()
            )
        )
    else:
        connection.execute(
            model_aliases.update().where(where).values(version=to_version, updated_at=utcnow())
        )
    record_event(
        connection,
        entity_kind="model_alias",
        entity_id=f"{group}/{alias}",
        action="move" if to_version is not None else "remove",
        from_state=None if previous is None else str(previous),
        to_state=None if to_version is None else str(to_version),
        reason=reason,
        actor=actor,
    )
    return move


_ONE_VERSION = sa.select(model_versions).where(
    (model_versions.c.group_name == sa.bindparam("group_key"))
    & (model_versions.c.version == sa.bindparam("version_key"))
)
_GROUP_ALIASES = sa.select(model_aliases).where(
    model_aliases.c.group_name == sa.bindparam("group_key")
)


def read_version(connection: Connection, group: str, version: int) -> ModelVersion | None:
    """One version, by prepared statements: the registry's hottest read."""
    row = connection.execute(_ONE_VERSION, {"group_key": group, "version_key": version}).first()
    if row is None:
        return None
    held = sorted(
        a.alias
        for a in connection.execute(_GROUP_ALIASES, {"group_key": group})
        if a.version == version
    )
    return _version(row, held)


def read_versions(connection: Connection, condition: Any, group: str | None) -> list[ModelVersion]:
    rows = connection.execute(
        sa.select(model_versions)
        .where(condition)
        .order_by(model_versions.c.group_name, model_versions.c.version)
    ).all()
    alias_query = sa.select(model_aliases)
    if group is not None:
        alias_query = alias_query.where(model_aliases.c.group_name == group)
    aliases: dict[tuple[str, int], list[str]] = {}
    for a in connection.execute(alias_query):
        aliases.setdefault((a.group_name, a.version), []).append(a.alias)
    return [_version(r, sorted(aliases.get((r.group_name, r.version), []))) for r in rows]


def read_groups(connection: Connection) -> list[ModelGroup]:
    counts = (
        sa.select(
            model_versions.c.group_name,
            sa.func.count().label("n"),
            sa.func.max(model_versions.c.version).label("latest"),
        )
        .group_by(model_versions.c.group_name)
        .subquery()
    )
    rows = connection.execute(
        sa.select(model_package_groups.c.name, model_package_groups.c.created_at, counts)
        .outerjoin(counts, counts.c.group_name == model_package_groups.c.name)
        .order_by(model_package_groups.c.name)
    ).all()
    aliases: dict[str, dict[str, int]] = {}
    for a in connection.execute(sa.select(model_aliases)):
        aliases.setdefault(a.group_name, {})[a.alias] = a.version
    return [
        ModelGroup(r.name, as_utc(r.created_at), r.n or 0, r.latest, aliases.get(r.name, {}))
        for r in rows
    ]


def read_history(connection: Connection, subject: Any) -> list[HistoryEntry]:
    """The registry's audit events matching ``subject`` (a condition on events), in order."""
    kinds = events.c.entity_kind.in_(("model", "model_alias"))
    rows = connection.execute(sa.select(events).where(kinds & subject).order_by(events.c.id))
    return [
        HistoryEntry(
            as_utc(r.at),
            r.actor,
            r.action,
            r.entity_id,
            r.from_state,
            r.to_state,
            r.reason,
            dict(r.details or {}),
        )  # fmt: skip
        for r in rows
    ]


def _version(r: Any, aliases: list[str]) -> ModelVersion:
    return ModelVersion(
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
        aliases=tuple(aliases),
        created_at=as_utc(r.created_at),
    )


def _spans(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5": readable even for a group with hundreds of versions."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
