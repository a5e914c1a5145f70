"""The alarm loop: evaluates every alarm once per period, records each transition, acts on it.

Definitions and transitions live in the metadata database's ``events`` table (entity kind
``alarm``): a ``put`` or ``delete`` event per change of definition, a ``state`` event per
transition with its reason. The table is the audit log already, so the alarms a server loads at
start are exactly the ones its history shows, with no second source of truth to drift from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from shipyard.core.errors import InvalidRequestError, NotFoundError, ShipyardError
from shipyard.monitor.alarm_format import spec_from_dict, spec_to_dict
from shipyard.monitor.alarms import INSUFFICIENT_DATA, STATES, AlarmSpec, Transition, decide
from shipyard.storage import MetadataStore, list_events, record_event
from shipyard.storage.schema import events

logger = logging.getLogger(__name__)

ENTITY = "alarm"
API = "api"  # an alarm defined through the API, CLI or a file: persisted
DEFAULT = "default"  # a built-in guard the server adds at start: not persisted


class MetricsSource(Protocol):
    def query(
        self,
        metric: str,
        statistic: str,
        *,
        endpoint: str,
        variant: str | None,
        start_s: float,
        end_s: float,
    ) -> float | None: ...

    def requests(
        self, *, endpoint: str, variant: str | None, start_s: float, end_s: float
    ) -> int: ...


@dataclass(frozen=True)
class AlarmStatus:
    """An alarm's definition and its current state, as DescribeAlarms shows it."""

    spec: AlarmSpec
    state: str
    reason: str
    updated_s: float
    origin: str


class AlarmManager:
    """Holds the alarms, evaluates them at each period boundary, runs actions on transitions."""

    def __init__(
        self,
        metrics: MetricsSource,
        meta: MetadataStore,
        on_transition: Callable[[AlarmSpec, Transition], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.meta = meta
        self.on_transition = on_transition
        self.clock = clock
        self.history: deque[Transition] = deque(maxlen=1000)
        self._alarms: dict[str, AlarmStatus] = {}
        self._recorded: dict[str, tuple[str, str, float]] = {}  # last state per alarm, from db
        self._evaluated: dict[str, int] = {}  # alarm -> end of the periods it last evaluated
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # definitions ------------------------------------------------------------------------

    def load(self) -> list[str]:
        """Read persisted definitions and last states from the events table (at start)."""
        query = (
            sa.select(events)
            .where(events.c.entity_kind == ENTITY)
            .where(events.c.action.in_(("put", "delete", "state")))
            .order_by(events.c.id)
        )
        with self.meta.reading() as connection:
            rows = [dict(r._mapping) for r in connection.execute(query)]
        specs: dict[str, AlarmSpec] = {}
        for row in rows:
            name = row["entity_id"]
            if row["action"] == "state":
                self._recorded[name] = (row["to_state"], row["reason"], row["at_epoch_s"])
            elif row["action"] == "delete":
                specs.pop(name, None)
            else:
                try:
                    specs[name] = spec_from_dict(row["details"]["spec"])
                except (ShipyardError, KeyError, TypeError) as exc:
                    logger.error("stored alarm %s is unreadable, skipped: %s", name, exc)
        with self._lock:
            for spec in specs.values():
                self._install(spec, API)
        return sorted(specs)

    def put(
        self, spec: AlarmSpec, *, persist: bool = False, actor: str = "system", reason: str = ""
    ) -> AlarmStatus:
        """Create or replace an alarm; ``persist`` records it so later starts load it again."""
        with self._lock:
            if persist:
                with self.meta.transaction() as connection:
                    record_event(
                        connection,
                        entity_kind=ENTITY,
                        entity_id=spec.name,
                        action="put",
                        reason=reason or f"alarm {spec.describe_rule()}",
                        actor=actor,
                        details={"spec": spec_to_dict(spec)},
                    )
            return self._install(spec, API if persist else DEFAULT)

    def put_default(self, spec: AlarmSpec) -> bool:
        """Add a built-in alarm unless one of that name is defined (a user's version wins)."""
        with self._lock:
            if spec.name in self._alarms and self._alarms[spec.name].origin == API:
                return False
            self._install(spec, DEFAULT)
            return True

    def delete(self, name: str, *, actor: str = "system", reason: str = "") -> None:
        with self._lock:
            status = self.status(name)
            if status.origin == API:
                with self.meta.transaction() as connection:
                    record_event(
                        connection,
                        entity_kind=ENTITY,
                        entity_id=name,
                        action="delete",
                        reason=reason or "deleted",
                        actor=actor,
                    )
            del self._alarms[name]
            self._evaluated.pop(name, None)

    def status(self, name: str) -> AlarmStatus:
        with self._lock:
            found = self._alarms.get(name)
            if found is None:
                known = ", ".join(sorted(self._alarms)) or "none"
                raise NotFoundError(f"alarm {name!r} does not exist; alarms: {known}")
            return found

    def statuses(self) -> list[AlarmStatus]:
        with self._lock:
            return [self._alarms[name] for name in sorted(self._alarms)]

    def specs(self) -> list[AlarmSpec]:
        return [s.spec for s in self.statuses()]

    def state(self, name: str) -> str:
        return self.status(name).state

    def events(self, name: str) -> list[dict[str, Any]]:
        """Every recorded event of one alarm, oldest first (definitions, states, actions)."""
        return list_events(self.meta, entity_kind=ENTITY, entity_id=name)

    # evaluation -------------------------------------------------------------------------

    def evaluate(self, now: float | None = None) -> list[Transition]:
        """Evaluate each alarm whose newest complete period is new; returns the transitions."""
        now = self.clock() if now is None else now
        transitions = []
        for spec in self.specs():
            end = (int(now) // spec.period_s) * spec.period_s
            with self._lock:
                status = self._alarms.get(spec.name)
                if status is None or status.spec is not spec:
                    continue  # deleted or replaced since the list was taken
                if self._evaluated.get(spec.name) == end:
                    continue  # these periods were evaluated already
                self._evaluated[spec.name] = end
                datapoints, note = self._datapoints(spec, end)
                state, reason = decide(spec, datapoints, status.state)
                if state != status.state:
                    transition = self._transition(
                        spec, state, reason + note, now, tuple(datapoints), actor="alarm-evaluator"
                    )
                    transitions.append(transition)
        return transitions

    def set_state(
        self, name: str, state: str, *, reason: str, actor: str = "system"
    ) -> Transition | None:
        """SetAlarmState: force a state (and run its actions) until the next evaluation."""
        if state not in STATES:
            raise InvalidRequestError(f"state {state!r} is not one of {', '.join(STATES)}")
        if not reason.strip():
            raise InvalidRequestError("setting an alarm's state needs a reason")
        with self._lock:
            status = self.status(name)
            if status.state == state:
                return None
            return self._transition(
                status.spec, state, f"set by {actor}: {reason}", self.clock(), (), actor=actor
            )

    def start(self, tick_s: float = 0.25) -> None:
        """Evaluate in a background thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(tick_s):
                try:
                    self.evaluate()
                except Exception:  # a database hiccup must not end the watching for good
                    logger.exception("alarm evaluation failed; retrying in %.2f s", tick_s)

        self._thread = threading.Thread(target=loop, name="shipyard-alarms", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # internals --------------------------------------------------------------------------

    def _install(self, spec: AlarmSpec, origin: str) -> AlarmStatus:
        previous = self._alarms.get(spec.name)
        if previous is not None:
            state, reason, updated = previous.state, previous.reason, previous.updated_s
        else:
            state, reason, updated = self._recorded.get(
                spec.name, (INSUFFICIENT_DATA, "Unchecked: initial alarm creation", self.clock())
            )
        status = AlarmStatus(spec, state, reason, updated, origin)
        self._alarms[spec.name] = status
        self._evaluated.pop(spec.name, None)  # a changed definition is evaluated afresh
        return status

    def _datapoints(self, spec: AlarmSpec, end: int) -> tuple[list[float | None], str]:
        """The evaluation range's datapoints, oldest first; low-traffic ones become missing."""
        datapoints: list[float | None] = []
        quiet: list[int] = []
        for i in reversed(range(spec.evaluation_range)):
            start, stop = end - (i + 1) * spec.period_s, end - i * spec.period_s
            value = self.metrics.query(
                spec.metric, spec.statistic, endpoint=spec.endpoint, variant=spec.variant,
                start_s=start, end_s=stop,
            )  # fmt: skip
            if value is not None and spec.min_requests:
                served = self.metrics.requests(
                    endpoint=spec.endpoint, variant=spec.variant, start_s=start, end_s=stop
                )
                if served < spec.min_requests:
                    quiet.append(served)
                    value = None
            datapoints.append(value)
        note = ""
        if quiet:
            note = (
                f" {len(quiet)} period(s) served fewer than min_requests={spec.min_requests} "
                f"requests ({', '.join(map(str, quiet))}) and count as missing: low traffic is "
                "not a pass."
            )
        return datapoints, note

    def _transition(
        self,
        spec: AlarmSpec,
        state: str,
        reason: str,
        now: float,
        datapoints: tuple[float | None, ...],
        *,
        actor: str,
    ) -> Transition:
        current = self._alarms[spec.name]
        transition = Transition(spec.name, current.state, state, reason, now, datapoints)
        self._alarms[spec.name] = AlarmStatus(spec, state, reason, now, current.origin)
        self.history.append(transition)
        try:
            with self.meta.transaction() as connection:
                record_event(
                    connection,
                    entity_kind=ENTITY,
                    entity_id=spec.name,
                    action="state",
                    from_state=transition.from_state,
                    to_state=state,
                    reason=reason,
                    actor=actor,
                    details={"datapoints": list(datapoints), "endpoint": spec.endpoint},
                )
        except ShipyardError:  # the action matters more than its audit line
            logger.exception("could not record the transition of alarm %s", spec.name)
        if self.on_transition is not None:
            try:
                self.on_transition(spec, transition)
            except Exception:  # an action failing must not stop the alarm loop
                logger.exception("action of alarm %s failed", spec.name)
        return transition
