"""The deployment guardrail: bakes each step of a blue/green deployment and decides.

Per endpoint mid-deployment, on every tick:

- past ``MaximumExecutionTimeoutInSeconds`` since the deployment started: roll back;
- any auto-rollback alarm in ALARM (at any moment of a bake): roll back;
- at the end of a step's ``WaitIntervalInSeconds`` bake, the step is judged: it is
  *inconclusive*, and keeps baking, while the new fleet served fewer than
  ``MinimumRequestsPerStep`` requests since the bake began, or (with a minimum) an alarm is in
  INSUFFICIENT_DATA, or the prediction-drift check has too few scores on either fleet; a drift
  statistic over its threshold rolls back; otherwise the next share is shifted;
- after the last step (100 %), ``TerminationWaitInSeconds`` more with the alarms watched, then
  the old fleet is retired.

A rollback goes through the :class:`RollbackController`, the path every trigger takes. A bake
starts when the step was shifted or, after a restart, when this guardrail started: the
metrics of the window before a restart are gone, so the step is judged on a fresh window.

The thread reads the database every ``tick_s`` (0.5 s), and sooner when a bake or the
execution timeout is due then, so a verdict is never later than its deadline for the slower
poll; an alarm transition wakes it at once (:meth:`wake`), so an auto-rollback alarm does not
wait for the next poll either. (Alarms with the rollback action roll back on their own.)
Every decision is an audit event of the endpoint (``guardrail-*``, or serve's
``deployment-*``), so the history says why traffic moved.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shipyard.core.errors import NotFoundError, ShipyardError
from shipyard.monitor._deployments import DeploymentTraffic, DeploymentView
from shipyard.monitor._drift_stats import jensen_shannon, normed_wasserstein, sturges_counts
from shipyard.monitor.alarm_manager import AlarmManager
from shipyard.monitor.alarms import ALARM, INSUFFICIENT_DATA
from shipyard.monitor.metrics import MetricsStore
from shipyard.monitor.rollback import RollbackController
from shipyard.storage import MetadataStore, record_event

logger = logging.getLogger(__name__)
ACTOR = "guardrail"
PASS, INCONCLUSIVE, FAIL = "pass", "inconclusive", "fail"


@dataclass(frozen=True)
class Verdict:
    outcome: str  # PASS | INCONCLUSIVE | FAIL
    reason: str


@dataclass
class _Bake:
    started_s: float
    termination: bool = False  # the final bake after 100 %
    said_inconclusive: bool = False


class DeploymentGuardrail:
    """Drives every blue/green deployment of one server to completion or rollback."""

    def __init__(
        self,
        deployments: DeploymentTraffic,
        alarms: AlarmManager,
        metrics: MetricsStore,
        rollbacks: RollbackController,
        audit: MetadataStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.deployments = deployments
        self.alarms = alarms
        self.metrics = metrics
        self.rollbacks = rollbacks
        self.audit = audit
        self.clock = clock
        self._bakes: dict[tuple[str, str], _Bake] = {}  # (endpoint, step config) -> its bake
        self._started_s = clock()  # bakes of steps shifted before this are judged from here
        self._due_s = float("inf")  # the earliest deadline the last tick saw
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, tick_s: float = 0.5) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(max(0.0, min(tick_s, self._due_s - self.clock())))
                self._wake.clear()
                if self._stop.is_set():
                    return
                try:
                    self.tick()
                except Exception:  # a database hiccup must not end the watching for good
                    self._due_s = float("inf")
                    logger.exception("guardrail tick failed; retrying in %.2f s", tick_s)

        self._thread = threading.Thread(target=loop, name="shipyard-guardrail", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Tick now (an alarm changed state), not at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def tick(self) -> None:
        self._due_s = float("inf")
        for endpoint in self.deployments.deploying():
            try:
                self.advance(endpoint)
            except NotFoundError:  # deleted meanwhile
                continue
            except ShipyardError:
                logger.exception("guardrail could not advance the deployment of %s", endpoint)

    def advance(self, endpoint: str) -> None:
        """Take at most one decision for ``endpoint``'s deployment."""
        progress = self.deployments.progress(endpoint)
        if progress is None:
            return
        now = self.clock()
        if progress.status == "RollingBack":  # a rollback a crash interrupted: finish it
            self._roll_back(progress, "finishing a rollback interrupted by a restart")
            return
        if now - progress.started_s > progress.max_execution_s:
            self._roll_back(
                progress,
                f"MaximumExecutionTimeoutInSeconds ({progress.max_execution_s:g} s) exceeded "
                f"at {progress.summary}",
            )
            return
        bake = self._bakes.setdefault(
            (endpoint, progress.config_name),
            _Bake(min(now, max(progress.step_started_s, self._started_s))),
        )
        wait_s = progress.termination_wait_s if bake.termination else progress.wait_s
        self._due(progress.started_s + progress.max_execution_s, bake.started_s + wait_s)
        for name in progress.alarms:
            state, reason = self._alarm(name)
            if state == ALARM:
                phase = "termination wait" if bake.termination else f"step {progress.step + 1}"
                self._roll_back(progress, f"alarm {name} in ALARM while baking ({phase}): {reason}")
                return
        if bake.termination:
            if now - bake.started_s >= progress.termination_wait_s:
                self._forget(endpoint)
                self.deployments.complete(
                    endpoint,
                    reason=f"baked {progress.termination_wait_s:g} s at 100% "
                    "(TerminationWaitInSeconds) with no alarm; old fleet retired",
                )
            return
        if now - bake.started_s < progress.wait_s:
            return
        verdict = self.judge(progress, bake.started_s, now)
        if verdict.outcome == FAIL:
            self._roll_back(progress, verdict.reason)
        elif verdict.outcome == INCONCLUSIVE:
            if not bake.said_inconclusive:
                bake.said_inconclusive = True
                self._record(endpoint, "guardrail-inconclusive", verdict.reason, progress)
        elif progress.last_step:
            bake.termination, bake.started_s = True, now
            self._due(now + progress.termination_wait_s)
            self._record(endpoint, "guardrail-pass", verdict.reason, progress)
        else:
            self._record(endpoint, "guardrail-pass", verdict.reason, progress)
            self.deployments.shift(endpoint, progress.step + 1, reason=verdict.reason)

    def judge(self, progress: DeploymentView, start_s: float, end_s: float) -> Verdict:
        """The verdict on a step baked over [start_s, end_s]."""
        where = f"step {progress.step + 1}/{len(progress.steps)} ({progress.share:.0%})"
        needed = progress.min_requests
        seen = sum(
            self.metrics.requests(endpoint=progress.endpoint, variant=v, start_s=start_s,
                                  end_s=end_s + 1)
            for v in progress.green_variants
        )  # fmt: skip
        if seen < needed:
            return Verdict(
                INCONCLUSIVE,
                f"{where} inconclusive: the new fleet served {seen} of the {needed} requests "
                f"needed (MinimumRequestsPerStep) in {end_s - start_s:.1f} s; still baking",
            )
        if needed > 0:
            quiet = [n for n in progress.alarms if self._alarm(n)[0] == INSUFFICIENT_DATA]
            if quiet:
                return Verdict(
                    INCONCLUSIVE,
                    f"{where} inconclusive: alarm(s) {', '.join(quiet)} have "
                    "INSUFFICIENT_DATA; still baking",
                )
        drift = ""
        if progress.drift_statistic is not None and 0 < progress.share < 1:
            verdict = self._drift(progress, where, start_s, end_s)
            if verdict.outcome != PASS:
                return verdict
            drift = f"; {verdict.reason}"
        return Verdict(
            PASS,
            f"{where} passed: baked {end_s - start_s:.1f} s, {seen} requests on the new fleet, "
            f"no alarm{drift}",
        )

    def _drift(self, progress: DeploymentView, where: str, start_s: float, end_s: float) -> Verdict:
        green = self.deployments.score_samples(
            progress.endpoint, progress.green_variants, start_s, end_s
        )
        blue = self.deployments.score_samples(
            progress.endpoint, progress.blue_variants, start_s, end_s
        )
        needed = max(progress.min_requests, 2)
        if len(green) < needed or len(blue) < needed:
            return Verdict(
                INCONCLUSIVE,
                f"{where} inconclusive: prediction drift needs {needed} scores on each fleet, "
                f"got {len(green)} new and {len(blue)} old; still baking",
            )
        statistic = progress.drift_statistic
        value = score_drift(statistic or "jensen_shannon", blue, green)
        words = (
            f"prediction drift {statistic} {value:.4f} "
            f"(threshold {progress.drift_threshold:g}, {len(green)} new vs {len(blue)} old scores)"
        )
        if value > progress.drift_threshold:
            return Verdict(FAIL, f"{where}: {words} exceeds the threshold")
        return Verdict(PASS, words)

    def _alarm(self, name: str) -> tuple[str, str]:
        try:
            status = self.alarms.status(name)
        except NotFoundError:
            return INSUFFICIENT_DATA, f"alarm {name!r} does not exist"
        return status.state, status.reason

    def _roll_back(self, progress: DeploymentView, reason: str) -> None:
        self._forget(progress.endpoint)
        self.rollbacks.rollback(
            progress.endpoint, reason=reason, actor=ACTOR, suspect=progress.green_ref,
            trigger="guardrail",
        )  # fmt: skip

    def _due(self, *deadlines_s: float) -> None:
        # An inconclusive step stays due: it is judged again at every poll, not sooner.
        self._due_s = min([self._due_s, *(d for d in deadlines_s if d > self.clock())])

    def _forget(self, endpoint: str) -> None:
        for key in [k for k in self._bakes if k[0] == endpoint]:
            del self._bakes[key]

    def _record(self, endpoint: str, action: str, reason: str, progress: DeploymentView) -> None:
        with self.audit.transaction() as connection:
            record_event(
                connection,
                entity_kind="endpoint",
                entity_id=endpoint,
                action=action,
                reason=reason,
                actor=ACTOR,
                details={"step": progress.step + 1, "share": progress.share},
            )


def score_drift(statistic: str, reference: np.ndarray, current: np.ndarray) -> float:
    """Drift of ``current`` scores from ``reference``: Jensen-Shannon distance over shared
    Sturges bins, or the Wasserstein distance normed by the reference's spread."""
    reference, current = np.sort(reference), np.sort(current)
    if statistic == "wasserstein":
        return normed_wasserstein(reference, current)
    ref_counts, cur_counts = sturges_counts(reference, current)
    with np.errstate(divide="ignore", invalid="ignore"):  # empty bins are masked out after
        return jensen_shannon(ref_counts, cur_counts)
