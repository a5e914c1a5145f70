"""The rollback controller: return an endpoint to the previous approved version of its group.

Every trigger goes through :meth:`RollbackController.rollback`: a built-in alarm, an
Alertmanager alert, a guardrail, a monitor verdict long after the rollout, or a person
(``shipyard endpoints rollback``). Triggers of one endpoint run one at a time. A trigger may
name the version it saw misbehave (the *suspect*): when that version no longer serves, it does
nothing. A trigger naming none means "the version serving as I arrive": when a rollback of
the endpoint finished after it arrived (it waited behind that one), it does nothing either.
So twenty concurrent triggers for one incident cause exactly one rollback, and each of the
others is recorded as a no-op.

During a blue/green deployment (``deployments`` given), a rollback is the guardrail's: all
traffic returns to the old fleet in one step, whatever the trigger; the alias moves to the old
fleet's version and the new fleet's version is Rejected, as for any rollback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from shipyard.core.errors import ShipyardError, StateError
from shipyard.core.interfaces import ModelStore, TrafficController
from shipyard.core.types import ModelRef
from shipyard.monitor._deployments import DeploymentTraffic, DeploymentView
from shipyard.storage import MetadataStore, record_event

logger = logging.getLogger(__name__)

PRODUCTION = "production"
MAX_REASON_CHARS = 1024  # the registry's limit on a reason
MAX_ACTOR_CHARS = 128


@dataclass(frozen=True)
class RollbackOutcome:
    """What a trigger did: ``to_ref`` is None when there was nothing to do (idempotent)."""

    endpoint: str
    from_ref: ModelRef
    to_ref: ModelRef | None
    reason: str
    seconds: float
    at_s: float = 0.0  # wall-clock time the endpoint finished switching (or the no-op)
    trigger: str = ""
    actor: str = ""

    @property
    def rolled_back(self) -> bool:
        return self.to_ref is not None


class RollbackController:
    """Decides what to roll back to; acts only through ``TrafficController`` and ``ModelStore``.

    The version rolled back from is marked Rejected, so it is never a rollback target later,
    and the registry's ``production`` alias moves to the version rolled back to. With
    ``audit``, each trigger writes an ``endpoint`` event: ``rollback`` or ``rollback-noop``.
    """

    def __init__(
        self,
        models: ModelStore,
        traffic: TrafficController,
        audit: MetadataStore | None = None,
        deployments: DeploymentTraffic | None = None,
    ) -> None:
        self.models = models
        self.traffic = traffic
        self.audit = audit
        self.deployments = deployments
        self.outcomes: list[RollbackOutcome] = []  # every trigger's outcome, in order
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self._finished: dict[str, tuple[float, RollbackOutcome]] = {}  # last, per endpoint

    def rollback(
        self,
        endpoint: str,
        *,
        reason: str,
        actor: str = "rollback-controller",
        suspect: ModelRef | None = None,
        trigger: str = "manual",
    ) -> RollbackOutcome:
        started = time.perf_counter()
        actor = actor[:MAX_ACTOR_CHARS]
        with self._guard:
            lock = self._locks[endpoint]
        with lock:
            last = self._finished.get(endpoint)
            if suspect is None and last is not None and last[0] > started:
                note = (
                    f"nothing to do: {endpoint} was rolled back from {last[1].from_ref} to "
                    f"{last[1].to_ref} while this trigger waited; {reason}"
                )
                outcome = RollbackOutcome(
                    endpoint, last[1].from_ref, None, note, time.perf_counter() - started,
                    time.time(), trigger, actor,
                )  # fmt: skip
                return self._finish(outcome, "rollback-noop")
            serving = self.traffic.serving_versions(endpoint)
            suspect = suspect or _newest(serving)
            if suspect not in serving.values():
                note = (
                    f"nothing to do: {suspect} no longer serves {endpoint} (serving "
                    f"{', '.join(sorted(map(str, set(serving.values()))))}); {reason}"
                )
                outcome = RollbackOutcome(
                    endpoint, suspect, None, note, time.perf_counter() - started,
                    time.time(), trigger, actor,
                )  # fmt: skip
                return self._finish(outcome, "rollback-noop")
            progress = None if self.deployments is None else self.deployments.progress(endpoint)
            if progress is not None:
                return self._abort_deployment(progress, reason, actor, trigger, started)
            current = _newest(serving)
            target = self.models.previous_approved(current)
            if target is None:
                problem = (
                    f"cannot roll back {endpoint}: no Approved version of {current.group} "
                    f"older than {current}"
                )
                self._record(endpoint, "rollback-failed", current, None, problem, actor, trigger)
                raise StateError(problem)
            note = _clip(f"rollback from {current} to {target.ref} ({trigger}): {reason}")
            self.traffic.route_all(endpoint, target.ref, actor=actor, reason=note)
            self.models.set_alias(
                target.ref.group, PRODUCTION, target.ref.version, actor=actor, reason=note
            )
            # The version that misbehaved must never be a rollback target itself later.
            self.models.reject(current.group, current.version, actor=actor, reason=note)
            outcome = RollbackOutcome(
                endpoint, current, target.ref, reason, time.perf_counter() - started,
                time.time(), trigger, actor,
            )  # fmt: skip
            self._finished[endpoint] = (time.perf_counter(), outcome)
            return self._finish(outcome, "rollback")

    def _abort_deployment(
        self, progress: DeploymentView, reason: str, actor: str, trigger: str, started: float
    ) -> RollbackOutcome:
        assert self.deployments is not None
        current, target = progress.green_ref, progress.blue_ref
        note = _clip(
            f"rollback of the deployment {current} -> old fleet {target} ({trigger}, at "
            f"{progress.share:.0%} on the new fleet): {reason}"
        )
        self.deployments.abort(progress.endpoint, actor=actor, reason=note)
        try:
            self.models.set_alias(
                target.group, PRODUCTION, target.version, actor=actor, reason=note
            )
        except ShipyardError as exc:  # an old fleet that was never Approved keeps serving
            note = _clip(f"{note}; {PRODUCTION} alias not moved: {exc}")
        if current != target:
            self.models.reject(current.group, current.version, actor=actor, reason=note)
        outcome = RollbackOutcome(
            progress.endpoint, current, target, note, time.perf_counter() - started,
            time.time(), trigger, actor,
        )  # fmt: skip
        self._finished[progress.endpoint] = (time.perf_counter(), outcome)
        return self._finish(outcome, "rollback")

    def _finish(self, outcome: RollbackOutcome, action: str) -> RollbackOutcome:
        with self._guard:
            self.outcomes.append(outcome)
        self._record(
            outcome.endpoint, action, outcome.from_ref, outcome.to_ref, outcome.reason,
            outcome.actor, outcome.trigger, seconds=outcome.seconds,
        )  # fmt: skip
        return outcome

    def _record(
        self,
        endpoint: str,
        action: str,
        from_ref: ModelRef,
        to_ref: ModelRef | None,
        reason: str,
        actor: str,
        trigger: str,
        seconds: float = 0.0,
    ) -> None:
        if self.audit is None:
            return
        try:
            with self.audit.transaction() as connection:
                record_event(
                    connection,
                    entity_kind="endpoint",
                    entity_id=endpoint,
                    action=action,
                    from_state=str(from_ref),
                    to_state=None if to_ref is None else str(to_ref),
                    reason=_clip(reason),
                    actor=actor,
                    details={"trigger": trigger, "seconds": round(seconds, 4)},
                )
        except ShipyardError:  # the rollback itself matters more than its audit line
            logger.exception("could not record the %s of endpoint %s", action, endpoint)


def _newest(serving: dict[str, ModelRef]) -> ModelRef:
    if not serving:
        raise StateError("the endpoint serves no model version; there is nothing to roll back")
    return max(serving.values(), key=lambda ref: ref.version)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"
