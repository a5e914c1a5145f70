"""Worker autoscaling by target tracking, the way SageMaker scales an endpoint's instances.

The tracked metric is invocations per worker per minute: the desired count is the current rate
divided by the target, rounded up and held within [min, max]. Scale-out reacts after
``scale_out_cooldown_s`` since the last scale-out; scale-in waits ``scale_in_cooldown_s`` since
any scaling, so a short lull does not shed workers that the next burst needs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shipyard.core.errors import ConfigError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScalingPolicy:
    """Target tracking on invocations per worker per minute, within [min, max] workers."""

    min_workers: int
    max_workers: int
    target_invocations_per_worker_per_min: float
    scale_out_cooldown_s: float = 60.0
    scale_in_cooldown_s: float = 300.0
    period_s: float = 1.0  # how often the rate is checked

    def __post_init__(self) -> None:
        if not 1 <= self.min_workers <= self.max_workers:
            raise ConfigError(
                f"autoscaling needs 1 <= min workers <= max workers, got "
                f"min {self.min_workers}, max {self.max_workers}"
            )
        if self.target_invocations_per_worker_per_min <= 0:
            raise ConfigError(
                "the autoscaling target must be > 0 invocations per worker per minute, got "
                f"{self.target_invocations_per_worker_per_min}"
            )


class Autoscaler:
    """Decides worker counts from the invocation rate; :meth:`start` runs it on a thread."""

    def __init__(
        self,
        policy: ScalingPolicy,
        *,
        rate: Callable[[], float],
        current: Callable[[], int],
        scale_to: Callable[[int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._rate = rate
        self._current = current
        self._scale_to = scale_to
        self._clock = clock
        self._last_out = -math.inf
        self._last_any = -math.inf
        self.decisions: list[tuple[float, int, int]] = []  # (when, from, to), for the record
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autoscaler", daemon=True)

    def desired(self, current: int, invocations_per_min: float) -> int:
        """The worker count that brings the per-worker rate to the target."""
        wanted = math.ceil(invocations_per_min / self.policy.target_invocations_per_worker_per_min)
        return max(self.policy.min_workers, min(self.policy.max_workers, wanted))

    def step(self) -> int:
        """Check the rate once and scale if the policy and its cooldowns allow; returns the
        worker count asked for."""
        now = self._clock()
        current = self._current()
        wanted = self.desired(current, self._rate())
        if wanted > current and now - self._last_out >= self.policy.scale_out_cooldown_s:
            self._last_out = now
        elif not (wanted < current and now - self._last_any >= self.policy.scale_in_cooldown_s):
            return current
        self._last_any = now
        self.decisions.append((now, current, wanted))
        _log.info("autoscaling workers %d -> %d", current, wanted)
        self._scale_to(wanted)
        return wanted

    @property
    def is_running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self.policy.period_s):
            try:
                self.step()
            except Exception:  # a failed spawn must not end autoscaling; the next tick retries
                _log.exception("autoscaling step failed")
