"""What the registry hands out: versions, groups, alias moves and history entries.

Also the rules every write checks before touching the database: names, digests, lengths,
and which approval transitions are allowed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipyard.core.errors import InvalidRequestError, StateError
from shipyard.core.names import check_name
from shipyard.core.types import ModelRef, ModelVersionInfo

PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)
PRODUCTION = "production"
# MLflow's fixed stages became aliases (MLflow 2.9); the two stage words that name a place
# to serve from map onto aliases of the same name. "None" and "Archived" mean "no stage".
STAGE_ALIASES = {"staging": "staging", "production": PRODUCTION}
MAX_ACTOR_CHARS = 128
MAX_REASON_CHARS = 1024  # SageMaker's ApprovalDescription limit
MAX_FRAMEWORK_CHARS = 32
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


@dataclass(frozen=True)
class ModelGroup:
    """A model package group: its versions' count and newest number, and its aliases."""

    name: str
    created_at: datetime
    version_count: int
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AliasMove:
    """An alias that moved (or was asked to); ``None`` means it pointed nowhere."""

    group: str
    alias: str
    from_version: int | None
    to_version: int | None

    @property
    def moved(self) -> bool:
        return self.from_version != self.to_version


@dataclass(frozen=True)
class ApprovalChange:
    """The outcome of one approval call: the version as it is now, and what moved with it."""

    version: ModelVersion
    from_status: str
    alias_moves: tuple[AliasMove, ...] = ()

    @property
    def changed(self) -> bool:
        return self.from_status != self.version.approval_status or any(
            m.moved for m in self.alias_moves
        )


@dataclass(frozen=True)
class HistoryEntry:
    """One audit event of a group: who changed what, when, from which state to which, why."""

    at: datetime
    actor: str
    action: str
    subject: str  # "group@version" for a version, "group/alias" for an alias
    from_state: str | None
    to_state: str | None
    reason: str
    details: dict[str, Any]


def alias_name(alias: str | None = None, *, stage: str | None = None) -> str:
    """The alias an alias or an MLflow stage word names: ``stage="Production"`` -> production.

    Aliases are case-insensitive and stored in lower case.
    """
    if (alias is None) == (stage is None):
        raise InvalidRequestError("name exactly one of alias (e.g. production) or stage")
    if stage is not None:
        found = STAGE_ALIASES.get(stage.lower())
        if found is None:
            raise InvalidRequestError(
                f"stage {stage!r} is not one of Staging, Production (MLflow's None and "
                "Archived mean no stage: nothing to point at)"
            )
        return found
    assert alias is not None
    return check_name("alias", alias).lower()


MAX_VERSION = 2**31 - 1  # the column is a 32-bit integer on every backend


def check_version_number(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidRequestError(
            f"version {version!r} is not a whole number from 1 to {MAX_VERSION}"
        )
    return version


def parse_version_number(text: str) -> int:
    """A version number from a path or a command line, or a clear error."""
    if not text.isdigit() or len(text) > 10 or not 1 <= int(text) <= MAX_VERSION:
        raise InvalidRequestError(f"version {text!r} is not a whole number from 1 to {MAX_VERSION}")
    return int(text)


def check_note(actor: str, reason: str) -> None:
    """Actor and reason fit their columns, so a long one is refused rather than cut."""
    if not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR_CHARS:
        raise InvalidRequestError(
            f"actor {actor!r} must be 1-{MAX_ACTOR_CHARS} characters naming who acts"
        )
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise InvalidRequestError(f"reason must be text of at most {MAX_REASON_CHARS} characters")


def check_registration(
    *,
    artifact_uri: str,
    sha256: str,
    framework: str,
    framework_version: str,
    documents: dict[str, Any],
) -> None:
    """Refuse a registration that could not be stored whole, naming the field at fault."""
    if not isinstance(artifact_uri, str) or not artifact_uri.strip():
        raise InvalidRequestError("artifact_uri is empty; give the URI of the model package")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise InvalidRequestError(
            f"sha256 {sha256!r} is not 64 lower-case hex digits (the digest of the artifact)"
        )
    for name, value in (("framework", framework), ("framework_version", framework_version)):
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_FRAMEWORK_CHARS:
            raise InvalidRequestError(
                f"{name} {value!r} must be 1-{MAX_FRAMEWORK_CHARS} characters"
            )
    for name, value in documents.items():
        if not isinstance(value, dict):
            raise InvalidRequestError(f"{name} must be a mapping, got {type(value).__name__}")
        try:
            # PostgreSQL's JSON refuses NaN and infinities; refuse them on every backend.
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"{name} is not storable as JSON: {exc}") from None
    datasets = documents.get("lineage", {}).get("datasets", [])
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise InvalidRequestError("lineage.datasets must be a list of dataset ids")


def check_transition(ref: ModelRef, current: str, target: str, reason: str) -> None:
    """Approval rules: any status may follow any other, but re-approving needs a reason."""
    if target not in APPROVAL_STATUSES:
        raise InvalidRequestError(
            f"approval status {target!r} is not one of {', '.join(APPROVAL_STATUSES)}"
        )
    if current == REJECTED and target == APPROVED and not reason.strip():
        raise StateError(
            f"{ref} is Rejected; approving a rejected version needs a reason saying why it "
            "is fit to serve after all"
        )


def check_alias_target(ref: ModelRef, alias: str, status: str) -> None:
    if alias == PRODUCTION and status != APPROVED:
        raise StateError(f"{ref} is {status}; only an Approved version can be production")


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time Shipyard stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
