"""The registry's changing calls as the HTTP API and the CLI make them, with their outcomes.

``ModelActions`` is the shape those calls take. :class:`RegistryActions` implements it on the
registry alone; ``shipyard.pipeline.deployment`` implements it with the deployments an
approval or a rejection triggers, without the registry knowing about endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shipyard.core.errors import InvalidRequestError
from shipyard.core.types import ModelRef
from shipyard.registry.model import (
    APPROVED,
    REJECTED,
    AliasMove,
    ApprovalChange,
    ModelVersion,
    alias_name,
)
from shipyard.registry.registry import ModelRegistry


@dataclass(frozen=True)
class Redeployment:
    """An endpoint switched by a registry action: what it served before, what it serves now."""

    endpoint: str
    from_refs: tuple[ModelRef, ...]
    to_ref: ModelRef


@dataclass(frozen=True)
class ActionOutcome:
    """What one approve, reject or promote call changed (nothing, when it was already so)."""

    version: ModelVersion
    from_status: str
    alias_moves: tuple[AliasMove, ...] = ()
    redeployments: tuple[Redeployment, ...] = ()

    @property
    def changed(self) -> bool:
        return (
            self.from_status != self.version.approval_status
            or any(m.moved for m in self.alias_moves)
            or bool(self.redeployments)
        )

    @classmethod
    def of(
        cls, change: ApprovalChange, redeployments: tuple[Redeployment, ...] = ()
    ) -> ActionOutcome:
        return cls(change.version, change.from_status, change.alias_moves, redeployments)


class ModelActions(Protocol):
    """Approve, reject and promote; ``deploy_to`` names an endpoint to switch to the version.

    ``skip_gate`` approves without the evaluation gate an implementation may run (the reason
    says why); an implementation without a gate has nothing to skip.
    """

    def approve(
        self,
        group: str,
        version: int,
        *,
        actor: str,
        reason: str,
        deploy_to: str | None = None,
        skip_gate: bool = False,
    ) -> ActionOutcome: ...

    def reject(self, group: str, version: int, *, actor: str, reason: str) -> ActionOutcome: ...

    def promote(
        self,
        group: str,
        version: int,
        alias: str,
        *,
        actor: str,
        reason: str,
        deploy_to: str | None = None,
    ) -> ActionOutcome: ...


class RegistryActions:
    """``ModelActions`` on the registry alone: it has no endpoints, so it deploys nothing."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def approve(
        self,
        group: str,
        version: int,
        *,
        actor: str,
        reason: str,
        deploy_to: str | None = None,
        skip_gate: bool = False,
    ) -> ActionOutcome:
        _refuse_deploy(deploy_to)
        change = self.registry.update_approval(group, version, APPROVED, actor=actor, reason=reason)
        return ActionOutcome.of(change)

    def reject(self, group: str, version: int, *, actor: str, reason: str) -> ActionOutcome:
        change = self.registry.update_approval(group, version, REJECTED, actor=actor, reason=reason)
        return ActionOutcome.of(change)

    def promote(
        self,
        group: str,
        version: int,
        alias: str,
        *,
        actor: str,
        reason: str,
        deploy_to: str | None = None,
    ) -> ActionOutcome:
        _refuse_deploy(deploy_to)
        move = self.registry.promote(group, version, alias_name(alias), actor=actor, reason=reason)
        now = self.registry.get(group, version)
        return ActionOutcome(now, now.approval_status, (move,) if move.moved else ())


def _refuse_deploy(endpoint: str | None) -> None:
    if endpoint is not None:
        raise InvalidRequestError(
            f"cannot deploy to {endpoint!r}: this registry is not wired to any endpoints"
        )
