"""Deployment triggered by the registry, as SageMaker's project templates do it.

- Approving with ``deploy_to=ENDPOINT`` switches that endpoint to the version and makes it
  ``production``. The endpoint is switched first and the approval committed after, so a
  package that does not load leaves the registry untouched; if the approval then fails, the
  endpoint is switched back.
- Rejecting a version (Approved -> Rejected, or a Pending one that an endpoint serves)
  redeploys every endpoint serving it with the newest version still Approved; the registry
  moves ``production`` there in the same transaction as the rejection. The rejection stands
  even if an endpoint then fails to switch: the error names the endpoint still serving it.
- Rejecting the new fleet's version of a blue/green deployment rolls that deployment back, as
  its guardrail would (:class:`RollbackController`: all traffic to the old fleet, the
  ``production`` alias to its version, a ``rollback`` event). Rejecting the old fleet's version
  mid-deployment is refused (409), before any change: the deployment's only way back would be
  a Rejected version. Let it finish, or roll it back, then reject.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.routing import Route

from shipyard.core.errors import ShipyardError, StateError
from shipyard.core.names import check_name
from shipyard.core.types import ModelRef
from shipyard.monitor import RollbackController
from shipyard.pipeline.gate import EvaluationGate
from shipyard.pipeline.workspace import Workspace
from shipyard.registry import (
    APPROVED,
    PRODUCTION,
    REJECTED,
    ActionOutcome,
    ModelRegistry,
    Redeployment,
    alias_name,
    create_registry_routes,
)
from shipyard.serve import IN_SERVICE, EndpointDescription, EndpointService, VariantSpec


def registry_routes(workspace: Workspace) -> list[Route]:
    """The registry's HTTP routes: approvals gated by evaluation, and wired to the endpoints."""
    gate = EvaluationGate(workspace)
    return create_registry_routes(
        workspace.registry,
        Deployments(workspace.registry, workspace.endpoints, gate, workspace.rollbacks),
    )


class Deployments:
    """The registry's ``ModelActions`` with the deployments they trigger.

    Calls on one group are serialised in this process, so two approvals that deploy cannot
    leave an endpoint on one version and ``production`` on the other.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        endpoints: EndpointService,
        gate: EvaluationGate | None = None,
        rollbacks: RollbackController | None = None,
    ) -> None:
        self.registry = registry
        self.endpoints = endpoints
        self.gate = gate
        self.rollbacks = rollbacks  # without it, a rejection mid-deployment is refused
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

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
        with self._serialised(group):
            if self.gate is not None:
                # Before any change: a refused candidate leaves status and endpoints as they are.
                self.registry.check_approval(group, version, APPROVED, actor=actor, reason=reason)
                self.gate.check(group, version, actor=actor, reason=reason, skip=skip_gate)
            if deploy_to is None:
                change = self.registry.update_approval(
                    group, version, APPROVED, actor=actor, reason=reason
                )
                return ActionOutcome.of(change)
            self.registry.check_approval(group, version, APPROVED, actor=actor, reason=reason)
            ref = ModelRef(group, version)
            note = f"deploy {ref} on approval" + (f": {reason}" if reason else "")
            switched = self._switch(deploy_to, ref, actor=actor, reason=note)
            try:
                change = self.registry.update_approval(
                    group, version, APPROVED, actor=actor, reason=reason, alias=PRODUCTION
                )
            except ShipyardError as exc:
                self._switch_back(switched, actor=actor, reason=f"approval failed: {exc}")
                raise
            return ActionOutcome.of(change, _redeployments(switched))

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
        alias = alias_name(alias)
        ref = ModelRef(group, version)
        with self._serialised(group):
            self.registry.check_promotion(group, version, alias, actor=actor, reason=reason)
            switched: list[tuple[Redeployment, list[VariantSpec]]] = []
            if deploy_to is not None:
                status = self.registry.get(group, version).approval_status
                if status != APPROVED:
                    raise StateError(f"{ref} is {status}; only an Approved version is deployed")
                note = f"deploy {ref} as {alias}" + (f": {reason}" if reason else "")
                switched = self._switch(deploy_to, ref, actor=actor, reason=note)
            try:
                move = self.registry.promote(group, version, alias, actor=actor, reason=reason)
            except ShipyardError as exc:
                self._switch_back(switched, actor=actor, reason=f"promotion failed: {exc}")
                raise
            now = self.registry.get(group, version)
            moves = (move,) if move.moved else ()
            return ActionOutcome(now, now.approval_status, moves, _redeployments(switched))

    def reject(self, group: str, version: int, *, actor: str, reason: str) -> ActionOutcome:
        ref = ModelRef(group, version)
        with self._serialised(group):
            self.registry.check_approval(group, version, REJECTED, actor=actor, reason=reason)
            aborted = self._deployments_of(ref)
            serving = [d.name for d in self._in_service() if ref in _refs(d.variants)]
            successor = self.registry.latest_approved(group, excluding=version)
            if serving and successor is None:
                raise StateError(
                    f"{', '.join(serving)} serve{'s' if len(serving) == 1 else ''} {ref} and no "
                    f"other version of {group} is Approved to replace it; approve one first"
                )
            change = self.registry.update_approval(
                group, version, REJECTED, actor=actor, reason=reason
            )
            rolled_back = []
            for name in aborted:
                assert self.rollbacks is not None
                before = _refs(self.endpoints.describe(name).variants)
                outcome = self.rollbacks.rollback(
                    name, reason=f"{ref} rejected" + (f": {reason}" if reason else ""),
                    actor=actor, suspect=ref, trigger="registry-reject",
                )  # fmt: skip
                if outcome.to_ref is not None:
                    rolled_back.append(Redeployment(name, before, outcome.to_ref))
            if not serving:
                return ActionOutcome.of(change, tuple(rolled_back))
            assert successor is not None
            note = f"{ref} rejected; redeploy {successor.ref}, the newest still Approved" + (
                f": {reason}" if reason else ""
            )
            done, failed = [], []
            for name in serving:
                try:
                    done += self._switch(name, successor.ref, actor=actor, reason=note)
                except ShipyardError as exc:
                    failed.append(f"{name} ({exc})")
            if failed:
                raise StateError(
                    f"{ref} is Rejected, but could not redeploy {successor.ref} to "
                    f"{'; '.join(failed)}: still serving {ref}"
                )
            return ActionOutcome.of(change, (*rolled_back, *_redeployments(done)))

    # ---------------------------------------------------------------------------------------

    @contextmanager
    def _serialised(self, group: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks[group]
        with lock:
            yield

    def _deployments_of(self, ref: ModelRef) -> list[str]:
        """Endpoints mid-deployment whose new fleet serves ``ref`` (to roll back); raises
        when an old fleet serves it, or when there is no rollback controller to roll back."""
        aborted = []
        for name in self.endpoints.deployments.deploying():
            progress = self.endpoints.deployments.progress(name)
            if progress is None:
                continue
            blue, green = _refs(list(progress.blue.variants)), _refs(list(progress.green.variants))
            summary = f"endpoint {name!r} is mid-deployment ({progress.summary})"
            if ref in blue:
                raise StateError(
                    f"{summary} and its old fleet serves {ref}, which a rollback returns to; "
                    f"let the deployment finish, or roll it back, then reject {ref}"
                )
            if ref in green:
                if self.rollbacks is None:
                    raise StateError(f"{summary}; roll it back, then reject {ref}")
                aborted.append(name)
        return aborted

    def _in_service(self) -> list[EndpointDescription]:
        return [d for d in self.endpoints.list_endpoints() if d.status == IN_SERVICE]

    def _switch(
        self, endpoint: str, ref: ModelRef, *, actor: str, reason: str
    ) -> list[tuple[Redeployment, list[VariantSpec]]]:
        """Serve ``ref`` on every request of ``endpoint``; the change and what it replaced."""
        check_name("endpoint", endpoint)
        before = self.endpoints.describe(endpoint)  # names the known endpoints if unknown
        if before.status != IN_SERVICE:
            raise StateError(f"endpoint {endpoint!r} is {before.status}; it cannot be switched")
        if _refs(before.variants) == (ref,):
            return []
        self.endpoints.route_all(endpoint, ref, actor=actor, reason=reason)
        return [(Redeployment(endpoint, _refs(before.variants), ref), before.variants)]

    def _switch_back(
        self, switched: list[tuple[Redeployment, list[VariantSpec]]], *, actor: str, reason: str
    ) -> None:
        for redeployment, variants in switched:
            self.endpoints.update_endpoint(
                redeployment.endpoint, variants, actor=actor, reason=f"switch back: {reason}"
            )


def _refs(variants: list[VariantSpec]) -> tuple[ModelRef, ...]:
    return tuple(dict.fromkeys(v.model for v in variants))


def _redeployments(
    switched: list[tuple[Redeployment, list[VariantSpec]]],
) -> tuple[Redeployment, ...]:
    return tuple(redeployment for redeployment, _ in switched)
