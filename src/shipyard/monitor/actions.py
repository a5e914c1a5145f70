"""What an alarm does when its state changes: roll back, POST a webhook, start a pipeline run.

Rollbacks run at once, in the evaluating thread (the sooner traffic is off a bad version, the
better). Webhooks and pipeline runs go to a small pool of worker threads, so a slow or dead
receiver never delays the next evaluation; a webhook is retried with exponential backoff.
Every action's outcome is recorded as an ``alarm`` event with action ``action``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from shipyard.core.errors import InvalidRequestError, ShipyardError
from shipyard.core.interfaces import TrafficController
from shipyard.core.types import ModelRef
from shipyard.monitor.alarm_format import NAMESPACE
from shipyard.monitor.alarms import PIPELINE, ROLLBACK, WEBHOOK, AlarmSpec, Transition
from shipyard.monitor.history import endpoint_history, versions_serving_between
from shipyard.monitor.metrics import ERRORS_4XX, ERRORS_5XX, MetricsStore
from shipyard.monitor.rollback import RollbackController, RollbackOutcome
from shipyard.monitor.statistics import is_percentile
from shipyard.storage import MetadataStore, record_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlarmNotice:
    """What a pipeline action receives: the alarm and the transition that started it."""

    spec: AlarmSpec
    transition: Transition


PipelineAction = Callable[[AlarmNotice], object]


class AlarmActions:
    """Runs the actions of alarm transitions; also the one rollback path of every trigger."""

    def __init__(
        self,
        rollbacks: RollbackController,
        metrics: MetricsStore,
        traffic: TrafficController,
        meta: MetadataStore,
        *,
        webhook_attempts: int = 5,
        webhook_backoff_s: float = 0.5,
        webhook_timeout_s: float = 5.0,
    ) -> None:
        self.rollbacks = rollbacks
        self.metrics = metrics
        self.traffic = traffic
        self.meta = meta
        self.webhook_attempts = webhook_attempts
        self.webhook_backoff_s = webhook_backoff_s
        self.webhook_timeout_s = webhook_timeout_s
        self._pipelines: dict[str, PipelineAction] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="shipyard-action")
        self._closing = threading.Event()
        self._pending: set[Future[None]] = set()
        self._pending_lock = threading.Lock()

    # registration -----------------------------------------------------------------------

    def register_pipeline(self, name: str, run: PipelineAction) -> None:
        """Make ``pipeline:NAME`` start ``run`` (called with an :class:`AlarmNotice`)."""
        self._pipelines[name] = run

    @property
    def pipelines(self) -> list[str]:
        return sorted(self._pipelines)

    def check(self, spec: AlarmSpec) -> AlarmSpec:
        """Refuse an alarm naming a pipeline action nobody registered."""
        for action in (*spec.actions, *spec.ok_actions, *spec.insufficient_data_actions):
            kind, _, target = action.partition(":")
            if kind == PIPELINE and target not in self._pipelines:
                known = ", ".join(self.pipelines) or "none registered"
                raise InvalidRequestError(
                    f"alarm {spec.name!r}: no pipeline action {target!r}; pipelines: {known}"
                )
        return spec

    # running ----------------------------------------------------------------------------

    def on_transition(self, spec: AlarmSpec, transition: Transition) -> None:
        """The ``AlarmManager`` callback: run the actions of the state entered."""
        for action in spec.actions_for(transition.to_state):
            kind, _, target = action.partition(":")
            try:
                if kind == ROLLBACK:
                    self._alarm_rollback(spec, transition)
                elif kind == WEBHOOK:
                    self._submit(self._deliver, target, alarm_message(spec, transition), spec.name)
                elif kind == PIPELINE:
                    self._submit(self._run_pipeline, target, AlarmNotice(spec, transition))
            except Exception as exc:  # one failed action must not stop the next (a webhook)
                logger.error(
                    "alarm %s: action %s failed: %s", spec.name, action, exc,
                    exc_info=not isinstance(exc, ShipyardError),  # a bug: keep its traceback
                )  # fmt: skip
                self._record(spec.name, f"{action} failed: {exc}", {"action": action})

    def rollback(
        self,
        endpoint: str,
        *,
        reason: str,
        actor: str,
        trigger: str,
        suspect: ModelRef | None = None,
    ) -> RollbackOutcome:
        """Roll ``endpoint`` back through the controller (the path every trigger takes)."""
        return self.rollbacks.rollback(
            endpoint, reason=reason, actor=actor, suspect=suspect, trigger=trigger
        )

    def suspect(
        self, endpoint: str, start_s: float, end_s: float, *, by_errors: bool = True
    ) -> ModelRef | None:
        """The version to blame for [start_s, end_s].

        With ``by_errors``, the version with the most model errors (5xx) in it, if any; else
        the newest version that took traffic in it, so a trigger that arrives after that
        version left does nothing. None when the endpoint has no recorded history.

        Metrics are per variant, and a variant keeps its name across versions: without this,
        an alarm raised by a bad version could roll back the good version deployed after it.
        """
        if by_errors:
            culprits = self.metrics.error_versions(endpoint, start_s, end_s)
            if culprits:
                return ModelRef.parse(max(culprits, key=lambda version: culprits[version]))
        served = versions_serving_between(endpoint_history(self.meta, endpoint), start_s, end_s)
        return max(served, key=lambda ref: ref.version) if served else None

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait for queued webhooks and pipeline runs; True if all finished in time."""
        with self._pending_lock:
            pending = list(self._pending)
        _, not_done = wait(pending, timeout=timeout_s)
        return not not_done

    def close(self) -> None:
        """Stop retrying, let running deliveries end (each within its timeout), drop the rest."""
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # internals --------------------------------------------------------------------------

    def _alarm_rollback(self, spec: AlarmSpec, transition: Transition) -> None:
        suspect = None  # a state set by hand: roll back whatever serves newest
        if transition.datapoints:
            end = (int(transition.at_s) // spec.period_s) * spec.period_s
            start = end - spec.evaluation_range * spec.period_s
            by_errors = spec.metric in (ERRORS_4XX, ERRORS_5XX)
            suspect = self.suspect(spec.endpoint, start, transition.at_s, by_errors=by_errors)
        outcome = self.rollback(
            spec.endpoint,
            reason=f"alarm {spec.name}: {transition.reason}",
            actor=f"rollback-controller (alarm {spec.name})",
            trigger=f"alarm {spec.name}",
            suspect=suspect,
        )
        summary = (
            f"rollback {spec.endpoint}: {outcome.from_ref} -> {outcome.to_ref}"
            if outcome.rolled_back
            else f"rollback {spec.endpoint}: no-op, {outcome.reason}"
        )
        self._record(spec.name, summary, {"action": ROLLBACK, "endpoint": spec.endpoint})

    def _submit(self, work: Callable[..., None], *args: Any) -> None:
        if self._closing.is_set():
            return
        future = self._pool.submit(work, *args)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def _deliver(self, url: str, message: dict[str, Any], alarm: str) -> None:
        problem = ""
        for attempt in range(1, self.webhook_attempts + 1):
            try:
                answer = httpx.post(url, json=message, timeout=self.webhook_timeout_s)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if answer.is_success:
                    self._record(
                        alarm,
                        f"webhook {url} delivered (HTTP {answer.status_code}, attempt {attempt})",
                        {"action": WEBHOOK, "url": url, "attempts": attempt, "delivered": True},
                    )
                    return
                problem = f"HTTP {answer.status_code}"
                if answer.status_code < 500 and answer.status_code != 429:
                    break  # the receiver refuses this message; sending it again will not help
            backoff = min(30.0, self.webhook_backoff_s * 2 ** (attempt - 1))
            if attempt == self.webhook_attempts or self._closing.wait(backoff):
                break
        logger.warning("alarm %s: webhook %s not delivered: %s", alarm, url, problem)
        self._record(
            alarm,
            f"webhook {url} not delivered: {problem}",
            {"action": WEBHOOK, "url": url, "attempts": attempt, "delivered": False},
        )

    def _run_pipeline(self, name: str, notice: AlarmNotice) -> None:
        alarm = notice.spec.name
        try:
            self._pipelines[name](notice)
        except Exception as exc:  # a failing pipeline is reported, never raised into the pool
            logger.error(
                "alarm %s: pipeline %s failed: %s", alarm, name, exc,
                exc_info=not isinstance(exc, ShipyardError),  # a bug: keep its traceback
            )  # fmt: skip
            self._record(alarm, f"pipeline {name} failed: {exc}", {"action": PIPELINE})
            return
        self._record(alarm, f"pipeline {name} ran", {"action": PIPELINE, "pipeline": name})

    def _record(self, alarm: str, reason: str, details: dict[str, Any]) -> None:
        try:
            with self.meta.transaction() as connection:
                record_event(
                    connection,
                    entity_kind="alarm",
                    entity_id=alarm,
                    action="action",
                    reason=reason,
                    actor="alarm-actions",
                    details=details,
                )
        except ShipyardError:
            logger.exception("could not record an action of alarm %s", alarm)


def alarm_message(spec: AlarmSpec, transition: Transition) -> dict[str, Any]:
    """The JSON a webhook receives, shaped like CloudWatch's alarm notification over SNS."""
    dimensions = [{"name": "EndpointName", "value": spec.endpoint}]
    if spec.variant:
        dimensions.append({"name": "VariantName", "value": spec.variant})
    if is_percentile(spec.statistic):
        statistic = {"StatisticType": "ExtendedStatistic", "ExtendedStatistic": spec.statistic}
    else:
        statistic = {"StatisticType": "Statistic", "Statistic": spec.statistic.upper()}
    return {
        "AlarmName": spec.name,
        "AlarmDescription": spec.description or None,
        "AWSAccountId": "local",
        "NewStateValue": transition.to_state,
        "NewStateReason": transition.reason,
        "StateChangeTime": datetime.fromtimestamp(transition.at_s, UTC).isoformat(),
        "Region": "local",
        "AlarmArn": f"arn:shipyard:cloudwatch:local:alarm:{spec.name}",
        "OldStateValue": transition.from_state,
        "OKActions": list(spec.ok_actions),
        "AlarmActions": list(spec.actions),
        "InsufficientDataActions": list(spec.insufficient_data_actions),
        "Trigger": {
            "MetricName": spec.metric,
            "Namespace": NAMESPACE,
            **statistic,
            "Unit": None,
            "Dimensions": dimensions,
            "Period": spec.period_s,
            "EvaluationPeriods": spec.evaluation_periods,
            "DatapointsToAlarm": spec.m,
            "ComparisonOperator": spec.comparison,
            "Threshold": spec.threshold,
            "TreatMissingData": spec.treat_missing_data,
            "EvaluateLowSampleCountPercentile": "",
        },
        "Datapoints": list(transition.datapoints),
    }
