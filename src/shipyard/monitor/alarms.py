"""Alarms with CloudWatch semantics: M of N periods breaching, missing-data treatment, history."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shipyard.core.errors import InvalidRequestError
from shipyard.monitor.metrics import check_statistic
from shipyard.storage import MetadataStore, record_event

logger = logging.getLogger(__name__)

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}
MISSING_TREATMENTS = ("missing", "notBreaching", "breaching", "ignore")


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


@dataclass(frozen=True)
class AlarmSpec:
    """What to watch and when to fire, as in CloudWatch's PutMetricAlarm."""

    name: str
    metric: str
    endpoint: str
    threshold: float
    variant: str | None = None
    statistic: str = "Average"
    period_s: int = 60
    evaluation_periods: int = 1
    datapoints_to_alarm: int | None = None
    comparison: str = "GreaterThanThreshold"
    treat_missing_data: str = "missing"
    actions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_statistic(self.statistic)
        if self.comparison not in COMPARISONS:
            raise InvalidRequestError(
                f"alarm {self.name!r}: comparison {self.comparison!r} is not one of "
                + ", ".join(COMPARISONS)
            )
        if self.treat_missing_data not in MISSING_TREATMENTS:
            raise InvalidRequestError(
                f"alarm {self.name!r}: treat_missing_data {self.treat_missing_data!r} is not "
                "one of " + ", ".join(MISSING_TREATMENTS)
            )
        if self.period_s < 1 or self.evaluation_periods < 1:
            raise InvalidRequestError(
                f"alarm {self.name!r}: period_s and evaluation_periods must be at least 1"
            )
        if not 1 <= self.m <= self.evaluation_periods:
            raise InvalidRequestError(
                f"alarm {self.name!r}: datapoints_to_alarm must be 1..evaluation_periods "
                f"({self.evaluation_periods}), got {self.datapoints_to_alarm}"
            )

    @property
    def m(self) -> int:
        return self.datapoints_to_alarm or self.evaluation_periods


@dataclass(frozen=True)
class Transition:
    alarm: str
    from_state: str
    to_state: str
    reason: str
    at_s: float
    datapoints: tuple[float | None, ...]


def decide(spec: AlarmSpec, datapoints: Sequence[float | None], current: str) -> tuple[str, str]:
    """The next state and its reason, from the newest ``evaluation_periods`` datapoints."""
    breaching_fn = COMPARISONS[spec.comparison]
    present = [d for d in datapoints if d is not None]
    missing = len(datapoints) - len(present)
    breaching = sum(1 for d in present if breaching_fn(d, spec.threshold))
    if spec.treat_missing_data == "breaching":
        breaching += missing
    shown = ", ".join("missing" if d is None else f"{d:.4g}" for d in datapoints)
    described = (
        f"{breaching} of the last {len(datapoints)} datapoint(s) [{shown}] "
        f"{spec.comparison} {spec.threshold:g} ({spec.statistic} of {spec.metric}, "
        f"{spec.period_s}s periods)"
    )
    if breaching >= spec.m:
        return ALARM, f"Threshold Crossed: {described}; {spec.m} needed to alarm"
    if not present and spec.treat_missing_data == "missing":
        return INSUFFICIENT_DATA, f"no datapoints in the last {len(datapoints)} period(s)"
    if not present and spec.treat_missing_data == "ignore":
        return current, "no datapoints; state kept (treat_missing_data=ignore)"
    return OK, f"Threshold not crossed: {described}"


class AlarmManager:
    """Evaluates every alarm at each period boundary and runs actions on state changes."""

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
        self._specs: dict[str, AlarmSpec] = {}
        self._states: dict[str, str] = {}
        self.history: deque[Transition] = deque(maxlen=1000)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, spec: AlarmSpec) -> None:
        with self._lock:
            self._specs[spec.name] = spec
            self._states.setdefault(spec.name, INSUFFICIENT_DATA)

    def state(self, name: str) -> str:
        return self._states[name]

    def specs(self) -> list[AlarmSpec]:
        with self._lock:
            return list(self._specs.values())

    def evaluate(self, now: float | None = None) -> list[Transition]:
        """Evaluate every alarm over its last complete periods; returns the transitions made."""
        now = self.clock() if now is None else now
        transitions = []
        for spec in self.specs():
            end = (int(now) // spec.period_s) * spec.period_s
            datapoints = [
                self.metrics.query(
                    spec.metric,
                    spec.statistic,
                    endpoint=spec.endpoint,
                    variant=spec.variant,
                    start_s=end - (i + 1) * spec.period_s,
                    end_s=end - i * spec.period_s,
                )
                for i in reversed(range(spec.evaluation_periods))
            ]
            current = self._states[spec.name]
            new_state, reason = decide(spec, datapoints, current)
            if new_state != current:
                transition = Transition(
                    spec.name, current, new_state, reason, now, tuple(datapoints)
                )
                self._states[spec.name] = new_state
                self.history.append(transition)
                transitions.append(transition)
                try:
                    self._record(transition)
                except Exception:  # the action matters more than its audit line
                    logger.exception("could not record the transition of alarm %s", spec.name)
                if self.on_transition is not None:
                    try:
                        self.on_transition(spec, transition)
                    except Exception:  # an action failing must not stop the alarm loop
                        logger.exception("action of alarm %s failed", spec.name)
        return transitions

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

    def _record(self, transition: Transition) -> None:
        with self.meta.transaction() as connection:
            record_event(
                connection,
                entity_kind="alarm",
                entity_id=transition.alarm,
                action="state",
                from_state=transition.from_state,
                to_state=transition.to_state,
                reason=transition.reason,
                details={"datapoints": list(transition.datapoints)},
            )
