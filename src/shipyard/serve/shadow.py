"""A shadow variant: scores a sampled copy of the traffic, off the request path.

The request path draws the sample and puts the request's rows on a bounded queue without
waiting; one background thread scores them. Answers are measured and captured, never returned,
and the shadow's errors and slowness stay here: a full queue drops the copy (counted).

Its counts are kept apart from the endpoint's invocation metrics on purpose: those feed the
endpoint's error-rate alarm, and a faulty shadow must not roll production back.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shipyard.core.package import PackagedModel
from shipyard.core.types import ModelRef
from shipyard.serve.runtime import RowsDecoder


@dataclass
class ShadowStats:
    sent: int = 0
    succeeded: int = 0
    errors: int = 0
    dropped: int = 0
    latency_s_total: float = 0.0
    last_error: str | None = None


class ShadowVariant:
    """One endpoint's shadow: a loaded model, a sample share, a queue and its worker thread."""

    def __init__(
        self,
        endpoint: str,
        name: str,
        ref: ModelRef,
        model: PackagedModel,
        *,
        sampling_percentage: float,
        queue_size: int = 1_000,
        on_scored: Callable[[object, object], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.ref = ref
        self.model = model
        self.sampling_percentage = sampling_percentage
        self.stats = ShadowStats()
        self._on_scored = on_scored
        self._queue: queue.Queue[tuple[RowsDecoder, object] | None] = queue.Queue(queue_size)
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"shadow-{endpoint}-{name}", daemon=True
        )
        self._thread.start()

    def offer(self, rows: RowsDecoder, context: object = None) -> bool:
        """Copy a request to the shadow if sampled; never waits. True if it was queued."""
        if self._rng.random() * 100.0 >= self.sampling_percentage:
            return False
        try:
            self._queue.put_nowait((rows, context))
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
            return False
        with self._lock:
            self.stats.sent += 1
        return True

    def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued copy was scored (tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._score(*item)
            finally:
                self._queue.task_done()

    def _score(self, rows: RowsDecoder, context: object) -> None:
        started = time.perf_counter()
        try:
            scores, _ = self.model.score(rows(self.model.input_types))
        except BaseException as exc:  # noqa: BLE001 - the shadow's failures end here, counted
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            with self._lock:
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self.stats.succeeded += 1
            self.stats.latency_s_total += time.perf_counter() - started
        if self._on_scored is not None:
            try:
                self._on_scored(scores, context)
            except Exception as exc:  # capture trouble must not stop the shadow
                with self._lock:
                    self.stats.last_error = f"capture: {type(exc).__name__}: {exc}"
