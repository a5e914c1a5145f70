"""The rollback controller: return an endpoint to the previous approved version of its group."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from shipyard.core.errors import StateError
from shipyard.core.interfaces import ModelStore, TrafficController
from shipyard.core.types import ModelRef


@dataclass(frozen=True)
class RollbackOutcome:
    """What a trigger did: ``to_ref`` is None when there was nothing to do (idempotent)."""

    endpoint: str
    from_ref: ModelRef
    to_ref: ModelRef | None
    reason: str
    seconds: float
    at_s: float = 0.0  # wall-clock time the endpoint finished switching


class RollbackController:
    """Decides what to roll back to; acts only through ``TrafficController`` and ``ModelStore``.

    The version rolled back from is marked Rejected. Triggers name the version they saw
    misbehave (``suspect``); a trigger that arrives after that version already left the
    endpoint does nothing, so concurrent or repeated triggers (an alarm, Alertmanager, a
    person) cause exactly one rollback.
    """

    def __init__(self, models: ModelStore, traffic: TrafficController) -> None:
        self.models = models
        self.traffic = traffic
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def rollback(
        self,
        endpoint: str,
        *,
        reason: str,
        actor: str = "rollback-controller",
        suspect: ModelRef | None = None,
    ) -> RollbackOutcome:
        started = time.perf_counter()
        with self._guard:
            lock = self._locks[endpoint]
        with lock:
            serving = self.traffic.serving_versions(endpoint)
            current = max(serving.values(), key=lambda ref: ref.version)
            if suspect is not None and suspect not in serving.values():
                return RollbackOutcome(
                    endpoint, suspect, None, f"{suspect} no longer serves {endpoint}", 0.0
                )
            target = self.models.previous_approved(current)
            if target is None:
                raise StateError(
                    f"cannot roll back {endpoint}: no Approved version of {current.group} "
                    f"older than {current}"
                )
            note = f"rollback from {current} to {target.ref}: {reason}"
            self.traffic.route_all(endpoint, target.ref, actor=actor, reason=note)
            self.models.set_alias(
                target.ref.group, "production", target.ref.version, actor=actor, reason=note
            )
            # The version that misbehaved must never be a rollback target itself later.
            self.models.reject(current.group, current.version, actor=actor, reason=note)
            return RollbackOutcome(
                endpoint, current, target.ref, reason, time.perf_counter() - started, time.time()
            )
