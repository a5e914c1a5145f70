"""Recent scores per endpoint variant, kept only while a blue/green deployment runs, so that a
guardrail can compare the new fleet's score distribution with the old fleet's on the same
traffic (prediction drift).

With worker processes the scores are produced in the workers but judged in the supervisor: a
worker's store is an *outbox* (``ScoreSamples(forward=True)``) that keeps nothing itself, and
its metrics forwarder sends what :meth:`ScoreSamples.take` returns to the supervisor, whose
store :meth:`ScoreSamples.receive` adds it to, stamped with the time each batch was scored.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

MAX_BATCHES = 20_000  # per variant: a bake window's worth at a few thousand requests/s
FORWARD_BATCHES = 2_000  # scored requests a worker sends per flush (every 50 ms)

# (endpoint, variant, scored-at times, rows per request, every score): one request's scores
# are ``scores[sum(rows[:i]) : sum(rows[:i + 1])]``. Arrays pickle far smaller than tuples.
ScoreBatch = tuple[str, str, np.ndarray, np.ndarray, np.ndarray]


class ScoreSamples:
    def __init__(self, *, forward: bool = False) -> None:
        self._samples: dict[tuple[str, str], deque[tuple[float, np.ndarray]]] = {}
        self._lock = threading.Lock()
        self.watched: set[str] = set()  # endpoints mid-deployment: the ones worth observing
        # Bounded like one variant's samples: a supervisor that stops reading loses the oldest.
        self._outbox: deque[tuple[str, str, float, np.ndarray]] | None = (
            deque(maxlen=MAX_BATCHES) if forward else None
        )

    def watch(self, endpoint: str) -> None:
        self.watched.add(endpoint)

    def observe(self, endpoint: str, variant: str, scores: np.ndarray) -> None:
        if self._outbox is not None:
            self._outbox.append((endpoint, variant, time.time(), scores))
            return
        self._keep(endpoint, variant, time.time(), scores)

    def take(self, limit: int = FORWARD_BATCHES) -> list[ScoreBatch]:
        """Up to ``limit`` of the oldest scored requests waiting in the outbox, grouped."""
        if self._outbox is None:
            return []
        grouped: dict[tuple[str, str], list[tuple[float, np.ndarray]]] = {}
        for _ in range(limit):
            try:
                endpoint, variant, at, scores = self._outbox.popleft()
            except IndexError:
                break
            grouped.setdefault((endpoint, variant), []).append((at, scores))
        batches = []
        for (endpoint, variant), samples in grouped.items():
            parts = [np.asarray(s, dtype=float).ravel() for _, s in samples]
            batches.append((
                endpoint, variant, np.array([at for at, _ in samples]),
                np.array([len(p) for p in parts], dtype=np.int64), np.concatenate(parts),
            ))  # fmt: skip
        return batches

    def receive(self, batches: list[ScoreBatch]) -> None:
        """Keep a worker's scores (from :meth:`take`) for the endpoints still watched here:
        those that arrive after a deployment ended would otherwise be kept for good."""
        for endpoint, variant, times, rows, scores in batches:
            if endpoint not in self.watched:
                continue
            for at, part in zip(
                times.tolist(), np.split(scores, np.cumsum(rows)[:-1]), strict=True
            ):
                self._keep(endpoint, variant, at, part)

    def between(
        self, endpoint: str, variants: tuple[str, ...], start_s: float, end_s: float
    ) -> np.ndarray:
        """Every score ``variants`` of ``endpoint`` produced in [start_s, end_s]."""
        parts: list[np.ndarray] = []
        for variant in variants:
            samples = self._samples.get((endpoint, variant))
            if samples is None:
                continue
            parts.extend(s for at, s in list(samples) if start_s <= at <= end_s)
        if not parts:
            return np.zeros(0)
        return np.concatenate([np.asarray(p, dtype=float).ravel() for p in parts])

    def forget(self, endpoint: str) -> None:
        with self._lock:
            self.watched.discard(endpoint)
            for key in [k for k in self._samples if k[0] == endpoint]:
                del self._samples[key]

    def _keep(self, endpoint: str, variant: str, at: float, scores: np.ndarray) -> None:
        key = (endpoint, variant)
        samples = self._samples.get(key)
        if samples is None:
            with self._lock:
                samples = self._samples.setdefault(key, deque(maxlen=MAX_BATCHES))
        samples.append((at, scores))  # deque.append is atomic
