"""Dynamic micro-batching: concurrent requests for one model are scored in one call.

A model call has a fixed cost (the booster's own dispatch, about 0.1 ms for XGBoost) that
dwarfs the per-row cost, so under load a worker answers more requests per second by scoring
them together. While a batch is being scored the next one gathers, and starts as soon as it
finishes; a request that finds nothing being scored waits at most ``max_wait_s`` for company
(0 by default: the batch still takes every request that arrived in the same turn of the event
loop, under load batches form anyway, and an idle server adds no latency).

A batch that is known to be quick (small, and recent batches took under
``inline_below_s``) is scored on the event loop itself: a hop to a thread and back costs more
than such a batch, and the two threads would contend for the GIL. Anything else (a slow model,
a large request, the first batch) is scored in a thread, so that it never stalls the loop.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

from shipyard.core.errors import ConfigError

Job = TypeVar("Job")
Result = TypeVar("Result")

# Scores a batch; returns one outcome per job, in order: a result, or the exception that job
# alone raises (so one bad request never fails its batch-mates).
BatchScorer = Callable[[list[Job]], list[Result | BaseException]]


@dataclass(frozen=True)
class BatchPolicy:
    """How many requests one model call may take, and how long a request waits for company."""

    max_batch_size: int = 64
    max_wait_s: float = 0.0
    inline_below_s: float = 0.003

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if not 0 <= self.max_wait_s <= 1:
            raise ConfigError(f"max_wait_s must be within [0, 1] seconds, got {self.max_wait_s}")
        if not 0 <= self.inline_below_s <= 0.1:
            raise ConfigError(
                f"inline_below_s must be within [0, 0.1] seconds, got {self.inline_below_s}"
            )


class MicroBatcher(Generic[Job, Result]):
    """Collects jobs submitted on one event loop and scores them in batches.

    At most one batch per batcher is scored at a time; jobs that arrive meanwhile form the next
    batch, which starts as soon as the current one finishes. ``is_small`` says whether a batch
    is small enough to be scored on the event loop (see the module's docstring); by default
    none is.
    """

    def __init__(
        self,
        score_batch: BatchScorer[Job, Result],
        policy: BatchPolicy,
        is_small: Callable[[list[Job]], bool] | None = None,
    ) -> None:
        self._score_batch = score_batch
        self.policy = policy
        self._is_small = is_small
        self._queue: list[tuple[Job, asyncio.Future[Result]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._is_scoring = False
        self._recent_s = math.inf  # smoothed seconds per batch; unknown until one is timed
        self.batches = 0  # batches scored, for tests and diagnostics
        self.largest_batch = 0
        self.inline_batches = 0

    async def submit(self, job: Job) -> Result:
        """Score ``job`` with whatever else arrives in time; raises that job's own error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append((job, future))
        if not self._is_scoring:
            if len(self._queue) >= self.policy.max_batch_size or self.policy.max_wait_s == 0:
                self._dispatch(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self.policy.max_wait_s, self._dispatch, loop)
        return await future

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._is_scoring or not self._queue:
            return
        self._is_scoring = True
        # The batch is taken when this callback runs, so it also holds every job submitted
        # in the meantime: the requests that arrived in this same turn of the event loop.
        loop.call_soon(self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        size = self.policy.max_batch_size
        batch, self._queue = self._queue[:size], self._queue[size:]
        jobs = [job for job, _ in batch]
        inline = (
            self._recent_s < self.policy.inline_below_s
            and self._is_small is not None
            and self._is_small(jobs)
        )
        if not inline:
            loop.create_task(self._run_in_thread(batch, jobs, loop))
            return
        self.inline_batches += 1
        try:
            outcomes = self._timed(jobs)
        except BaseException as exc:  # the scorer itself broke: every job in it learns why
            outcomes = [exc] * len(jobs)
        self._finish(batch, outcomes, loop)

    async def _run_in_thread(
        self,
        batch: list[tuple[Job, asyncio.Future[Result]]],
        jobs: list[Job],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        try:
            outcomes = await anyio.to_thread.run_sync(self._timed, jobs)
        except BaseException as exc:  # the scorer itself broke: every job in it learns why
            outcomes = [exc] * len(jobs)
        self._finish(batch, outcomes, loop)

    def _finish(
        self,
        batch: list[tuple[Job, asyncio.Future[Result]]],
        outcomes: list[Result | BaseException],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._is_scoring = False
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller gave up (timeout or disconnect)
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._queue:
            self._dispatch(loop)

    def _timed(self, jobs: list[Job]) -> list[Result | BaseException]:
        started = time.perf_counter()
        try:
            return self._score_batch(jobs)
        finally:
            took = time.perf_counter() - started
            recent = self._recent_s
            self._recent_s = took if recent == math.inf else 0.8 * recent + 0.2 * took


_process_policy = BatchPolicy()


def configure_batching(policy: BatchPolicy) -> None:
    """Set the policy of every batcher created from now on in this process (the server sets
    it from ``SHIPYARD_BATCH_*`` at start; runtimes built by the endpoint service use it)."""
    global _process_policy
    _process_policy = policy


def batch_policy() -> BatchPolicy:
    """The process-wide policy set by :func:`configure_batching`."""
    return _process_policy
