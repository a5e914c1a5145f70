"""The server's drain worker: lands every stream's new records, flushing by size or age."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import polars as pl

from shipyard.ingest.drain import LANDING_GROUP, drain_to_landing
from shipyard.ingest.hub import StreamHub
from shipyard.ingest.metrics import IngestMetrics
from shipyard.storage import ObjectStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainPolicy:
    """When to flush: enough records waiting, or the oldest wait long enough."""

    flush_records: int = 50_000
    flush_age_s: float = 5.0
    tick_s: float = 0.5
    max_lag_records: int = 2_000_000  # beyond this, the ingest API pushes back
    retention_every_s: float = 10.0


def lag(hub: StreamHub, name: str, group: str = LANDING_GROUP) -> int:
    """Records of ``name`` that ``group`` has not consumed yet."""
    stream = hub.get(name)
    return sum(
        stream.end_sequence(shard) - stream.committed(group, shard)
        for shard in range(stream.shard_count)
    )


class DrainWorker:
    """One background thread draining every stream of a hub into the landing zone.

    ``schema`` decodes every stream's events (see :func:`drain_to_landing`).
    """

    def __init__(
        self,
        hub: StreamHub,
        store: ObjectStore,
        policy: DrainPolicy,
        metrics: IngestMetrics | None = None,
        *,
        schema: pl.Schema,
    ) -> None:
        self.hub = hub
        self.schema = schema
        self.metrics = metrics
        self.store = store
        self.policy = policy
        self._waiting_since: dict[str, float] = {}
        self._trimmed_at = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.landed_records = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="shipyard-drain", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def run_once(self, *, force: bool = False) -> int:
        """Drain the streams that are due (all with ``force``); returns records landed."""
        landed = 0
        now = time.monotonic()
        for name in self.hub.names():
            try:
                landed += self._drain_if_due(name, now, force=force)
            except Exception:  # one stuck stream must not starve the others
                logger.exception("draining stream %s failed; the other streams go on", name)
        self.landed_records += landed
        if force or now - self._trimmed_at >= self.policy.retention_every_s:
            self._trimmed_at = now
            self.apply_retention()
        return landed

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Trim every stream to its retention, keeping what has not landed; records dropped."""
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        dropped = 0
        for name in self.hub.names():
            try:
                stream = self.hub.get(name)
                landed = {s: stream.committed(LANDING_GROUP, s) for s in range(stream.shard_count)}
                trimmed = stream.trim(now_ms, landed)
            except Exception:  # one stream's failure must not stop retention on the others
                logger.exception("applying retention to stream %s failed", name)
                continue
            if self.metrics is not None and trimmed:
                self.metrics.trimmed.labels(name).inc(trimmed)
            dropped += trimmed
        return dropped

    def _drain_if_due(self, name: str, now: float, *, force: bool) -> int:
        pending = lag(self.hub, name)
        if pending == 0:
            self._waiting_since.pop(name, None)
            return 0
        since = self._waiting_since.setdefault(name, now)
        due = pending >= self.policy.flush_records or now - since >= self.policy.flush_age_s
        if not (force or due):
            return 0
        started = time.perf_counter()
        result = drain_to_landing(self.hub.get(name), self.store, schema=self.schema)
        if self.metrics is not None:
            self.metrics.drain_seconds.labels(name).observe(time.perf_counter() - started)
            self.metrics.drained.labels(name).inc(result.records)
        self._waiting_since.pop(name, None)
        return result.records

    def _loop(self) -> None:
        while not self._stop.wait(self.policy.tick_s):
            try:
                self.run_once()
            except Exception:  # keep draining the other streams next tick
                logger.exception("drain pass failed; retrying")
        try:
            self.run_once(force=True)  # land what is left before the server stops
        except Exception:
            logger.exception("final drain pass failed; the records stay in the stream")
