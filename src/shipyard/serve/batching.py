"""Dynamic micro-batching: concurrent requests for one model are scored in one call.

A model call has a fixed cost (thread hop, feature preparation set-up, the booster's own
dispatch) that dwarfs the per-row cost, so under load a worker answers more requests per second
by scoring them together. While a batch is being scored the next one gathers, and starts as
soon as it finishes; a request that finds nothing being scored waits at most ``max_wait_s`` for
company (0 by default: under load batches form anyway, and an idle server adds no latency).
"""

from __future__ import annotations

import asyncio
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

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if not 0 <= self.max_wait_s <= 1:
            raise ConfigError(f"max_wait_s must be within [0, 1] seconds, got {self.max_wait_s}")


class MicroBatcher(Generic[Job, Result]):
    """Collects jobs submitted on one event loop and scores them in batches off the loop.

    At most one batch per batcher is scored at a time; jobs that arrive meanwhile form the next
    batch, which starts as soon as the current one finishes.
    """

    def __init__(self, score_batch: BatchScorer[Job, Result], policy: BatchPolicy) -> None:
        self._score_batch = score_batch
        self.policy = policy
        self._queue: list[tuple[Job, asyncio.Future[Result]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._is_scoring = False
        self.batches = 0  # batches scored, for tests and diagnostics
        self.largest_batch = 0

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
        size = self.policy.max_batch_size
        batch, self._queue = self._queue[:size], self._queue[size:]
        self._is_scoring = True
        loop.create_task(self._run(batch, loop))

    async def _run(
        self, batch: list[tuple[Job, asyncio.Future[Result]]], loop: asyncio.AbstractEventLoop
    ) -> None:
        jobs = [job for job, _ in batch]
        try:
            outcomes: list[Result | BaseException] = await anyio.to_thread.run_sync(
                self._score_batch, jobs
            )
        except BaseException as exc:  # the scorer itself broke: every job in it learns why
            outcomes = [exc] * len(jobs)
        finally:
            self._is_scoring = False
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(jobs))
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller gave up (timeout or disconnect)
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._queue:
            self._dispatch(loop)


_process_policy = BatchPolicy()


def configure_batching(policy: BatchPolicy) -> None:
    """Set the policy of every batcher created from now on in this process (the server sets
    it from ``SHIPYARD_BATCH_*`` at start; runtimes built by the endpoint service use it)."""
    global _process_policy
    _process_policy = policy


def batch_policy() -> BatchPolicy:
    """The process-wide policy set by :func:`configure_batching`."""
    return _process_policy
