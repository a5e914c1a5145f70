"""Alarms with CloudWatch semantics: what an alarm watches, and the state its datapoints give.

:func:`decide` follows CloudWatch's published rules for evaluating an alarm:

- it looks at an *evaluation range* of datapoints a little longer than the evaluation periods
  (N + 2, as in the CloudWatch user guide's examples; CloudWatch does not publish its size);
- with at least N real datapoints in the range, the N most recent real ones are evaluated and
  the missing-data treatment plays no part;
- with fewer, every real datapoint in the range is evaluated and the shortfall is filled by
  the treatment: ``breaching`` fills with breaching points, ``notBreaching`` with good ones,
  ``missing`` and ``ignore`` with nothing;
- ALARM when at least M (datapoints to alarm) of them breach. Otherwise, with no real
  datapoint at all, ``missing`` gives INSUFFICIENT_DATA and ``ignore`` keeps the state;
- *premature alarm* (``missing``): when no evaluated datapoint is good and the oldest breaching
  one within the last N periods is at least M periods old, the alarm goes to ALARM even with
  fewer than M real datapoints; ``ignore`` keeps the current state in that case instead.

Shipyard's one addition is ``min_requests``: a period that served fewer requests is a missing
datapoint, whatever its value, so a quiet period never passes (or fails) an alarm on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shipyard.core.errors import InvalidRequestError
from shipyard.monitor.statistics import check_statistic

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}
_WORDS = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
MISSING_TREATMENTS = ("missing", "notBreaching", "breaching", "ignore")
EXTRA_RANGE = 2  # evaluation range = evaluation periods + this
MAX_SPAN_S = 86_400  # CloudWatch: period x evaluation periods may not exceed one day
ROLLBACK = "rollback"
WEBHOOK = "webhook"
PIPELINE = "pipeline"
_ALARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_SEVERITY = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def check_alarm_name(name: str) -> str:
    if not isinstance(name, str) or not _ALARM_NAME.fullmatch(name):
        raise InvalidRequestError(
            f"alarm name {name!r} is not allowed: use 1-255 letters, digits and . _ -, "
            "starting with a letter or digit"
        )
    return name


def check_action(action: str) -> str:
    """``rollback``, ``webhook:http(s)://...`` or ``pipeline:NAME``; else a clear error."""
    kind, _, target = action.partition(":") if isinstance(action, str) else ("", "", "")
    if kind == ROLLBACK and not target:
        return action
    if kind == WEBHOOK and re.match(r"https?://[^\s/]+", target):
        return action
    if kind == PIPELINE and _PIPELINE_NAME.fullmatch(target):
        return action
    raise InvalidRequestError(
        f"action {action!r} is not one of: rollback, webhook:http(s)://HOST/..., pipeline:NAME"
    )


@dataclass(frozen=True)
class AlarmSpec:
    """What to watch and when to fire, as in CloudWatch's PutMetricAlarm.

    ``actions`` run when the alarm enters ALARM (CloudWatch's AlarmActions), ``ok_actions``
    and ``insufficient_data_actions`` when it enters those states.
    """

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
    ok_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    min_requests: int = 0
    description: str = ""
    actions_enabled: bool = True
    severity: str = ""  # for Prometheus rules; "" = critical with a rollback, else warning

    def __post_init__(self) -> None:
        check_alarm_name(self.name)
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
        if self.period_s * self.evaluation_periods > MAX_SPAN_S:
            raise InvalidRequestError(
                f"alarm {self.name!r}: period_s x evaluation_periods is "
                f"{self.period_s * self.evaluation_periods} s; at most {MAX_SPAN_S} (one day)"
            )
        if not 1 <= self.m <= self.evaluation_periods:
            raise InvalidRequestError(
                f"alarm {self.name!r}: datapoints_to_alarm must be 1..evaluation_periods "
                f"({self.evaluation_periods}), got {self.datapoints_to_alarm}"
            )
        if self.min_requests < 0:
            raise InvalidRequestError(f"alarm {self.name!r}: min_requests must be 0 or more")
        if self.severity and not _SEVERITY.fullmatch(self.severity):
            raise InvalidRequestError(
                f"alarm {self.name!r}: severity {self.severity!r} must be a lowercase word "
                "such as critical, warning or info"
            )
        for action in (*self.actions, *self.ok_actions, *self.insufficient_data_actions):
            check_action(action)

    @property
    def m(self) -> int:
        return self.datapoints_to_alarm or self.evaluation_periods

    @property
    def evaluation_range(self) -> int:
        return self.evaluation_periods + EXTRA_RANGE

    def actions_for(self, state: str) -> tuple[str, ...]:
        if not self.actions_enabled:
            return ()
        return {ALARM: self.actions, OK: self.ok_actions}.get(state, self.insufficient_data_actions)

    def describe_rule(self) -> str:
        """The rule in one line: 'p99 of ModelLatency > 150000 in 3 of 5 periods of 10 s'."""
        where = self.endpoint + (f"/{self.variant}" if self.variant else "")
        return (
            f"{self.statistic} of {self.metric} on {where} {_WORDS[self.comparison]} "
            f"{self.threshold:g} in {self.m} of {self.evaluation_periods} period(s) of "
            f"{self.period_s} s"
        )


@dataclass(frozen=True)
class Transition:
    alarm: str
    from_state: str
    to_state: str
    reason: str
    at_s: float
    datapoints: tuple[float | None, ...]


def decide(spec: AlarmSpec, datapoints: Sequence[float | None], current: str) -> tuple[str, str]:
    """The next state and its reason, from the datapoints of the evaluation range (oldest first).

    ``None`` is a missing datapoint. See the module docstring for the rules.
    """
    n, m, treatment = spec.evaluation_periods, spec.m, spec.treat_missing_data
    breaches = COMPARISONS[spec.comparison]
    flags = [None if d is None else breaches(d, spec.threshold) for d in datapoints]
    real = [
        (d, flag)
        for d, flag in zip(datapoints, flags, strict=True)
        if d is not None and flag is not None
    ]
    evaluated = real[-n:]
    filled = n - len(evaluated)
    breaching = sum(flag for _, flag in evaluated)
    if treatment == "breaching":
        breaching += filled
    shown = _show(evaluated, filled, treatment)
    words = _WORDS[spec.comparison]
    if breaching >= m:
        return ALARM, (
            f"Threshold Crossed: {breaching} out of the last {n} datapoints {shown} "
            f"{'was' if breaching == 1 else 'were'} {words} the threshold ({spec.threshold:g}) "
            f"(minimum {m} datapoint{'s' if m > 1 else ''} for ALARM)."
        )
    premature = treatment in ("missing", "ignore") and _premature(flags, evaluated, n, m)
    if treatment == "ignore" and (not real or premature):
        return current, (
            f"Missing data ignored: {filled} of the last {n} datapoints missing; "
            f"state {current} kept (treat_missing_data=ignore)."
        )
    if premature:
        return ALARM, (
            f"Threshold Crossed: the breaching datapoints {shown} span at least {m} periods "
            f"with no good datapoint since (premature alarm rule, {filled} missing)."
        )
    if not real and treatment == "missing":
        return INSUFFICIENT_DATA, (
            f"Insufficient Data: all {len(datapoints)} datapoints of the evaluation range "
            "were missing."
        )
    return OK, (
        f"Threshold Crossed: {n - breaching} out of the last {n} datapoints {shown} "
        f"{'was' if n - breaching == 1 else 'were'} not {words} the threshold "
        f"({spec.threshold:g}) (fewer than {m} breaching)."
    )


def _premature(
    flags: Sequence[bool | None], evaluated: Sequence[tuple[float, bool]], n: int, m: int
) -> bool:
    """CloudWatch's premature-alarm rule: an old enough breach with nothing good after it."""
    if not evaluated or any(not flag for _, flag in evaluated):
        return False
    window = list(flags[-n:])
    if True not in window:
        return False
    age = len(window) - window.index(True)
    return age >= m


def _show(evaluated: Sequence[tuple[float, bool]], filled: int, treatment: str) -> str:
    parts = [f"{value:.4g}" for value, _ in reversed(evaluated)]  # newest first, as CloudWatch
    if filled:
        parts.append(f"{filled} missing" + (f" as {treatment}" if treatment != "missing" else ""))
    return "[" + ", ".join(parts) + "]"
