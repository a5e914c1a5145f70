"""Inference worker processes: the pieces a worker runs, and the pool that runs workers.

The process model (``shipyard server --workers N``, N > 1):

- A **supervisor** process owns everything with state: the metadata writes behind endpoint
  changes, the embedded stream and its drain, the alarms and the one :class:`MetricsStore` they
  read. It binds the public socket and serves the management routes on a private loopback
  socket; it answers no invocation itself.
- N **inference workers** (spawned processes, each with its own loaded models) accept on the
  public socket. They answer invocations, ``/ping`` and the v2 model routes themselves and
  forward every other request (``/api/...``, ``/metrics``, ingest) to the supervisor.
- A worker follows each endpoint's committed config by polling the metadata every
  ``poll_s`` (100 ms): an update or a rollback reaches every worker within about that, plus
  the time to load the new model, which happens beside the old one before an atomic swap.
- A worker's invocation samples travel in batches over a queue to the supervisor, which
  records them in the one store: ``/metrics`` and the alarms see totals across workers. Its
  shadow and capture counters travel the same queue as snapshots, added to the supervisor's,
  and so do the scores of endpoints mid-deployment, for the guardrail's prediction-drift check.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from multiprocessing.context import SpawnProcess
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from shipyard.core.interfaces import MetricsSink
from shipyard.core.types import Invocation
from shipyard.serve.app import create_routes, http_error_handlers
from shipyard.serve.auth import api_key_middleware
from shipyard.serve.endpoints import IN_SERVICE, ROLLING_BACK, UPDATING, EndpointService
from shipyard.serve.multimodel import CacheState
from shipyard.serve.score_samples import ScoreBatch
from shipyard.serve.sidecar_metrics import SidecarCounts
from shipyard.storage.schema import endpoints

_log = logging.getLogger(__name__)
_SPAWN = multiprocessing.get_context("spawn")
SERVING_STATUSES = (IN_SERVICE, UPDATING, ROLLING_BACK)
_HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class MetricsForwarder:
    """A worker's :class:`MetricsSink`: samples go to the supervisor in batches every
    ``flush_s``, so a request never waits on inter-process traffic.

    With ``counters`` set it also sends that snapshot of the worker's shadow and capture
    counters, as ``("sidecars", pid, snapshot)``, whenever it changed since the last one sent;
    with ``caches`` set, the worker's multi-model cache states, as ``("caches", pid, states)``,
    likewise when changed; with ``scores`` set, what it returns (a bounded batch of deployment
    scores, see :meth:`ScoreSamples.take`) as ``("scores", pid, batches)``.
    """

    def __init__(
        self,
        channel: Any,
        flush_s: float = 0.05,
        counters: Callable[[], SidecarCounts] | None = None,
        scores: Callable[[], list[ScoreBatch]] | None = None,
        caches: Callable[[], dict[str, CacheState]] | None = None,
    ) -> None:
        self._channel = channel
        self._flush_s = flush_s
        self.counters = counters
        self.scores = scores
        self.caches = caches
        self._sent_counts: SidecarCounts = {}
        self._sent_caches: dict[str, CacheState] = {}
        self._pending: list[Invocation] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-forwarder", daemon=True)

    def record(self, invocation: Invocation) -> None:
        with self._lock:
            self._pending.append(invocation)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            self._channel.put(batch)
        scored = [] if self.scores is None else self.scores()
        if scored:
            self._channel.put(("scores", os.getpid(), scored))
        caches = {} if self.caches is None else self.caches()
        if caches != self._sent_caches:
            self._channel.put(("caches", os.getpid(), caches))
            self._sent_caches = caches
        if self.counters is not None:
            try:
                counts = self.counters()
            except Exception:  # an endpoint changing under the snapshot: the next one will do
                _log.debug("sidecar counters snapshot failed", exc_info=True)
                return
            if counts != self._sent_counts:
                self._channel.put(("sidecars", os.getpid(), counts))
                self._sent_counts = counts

    def _run(self) -> None:
        while not self._stopped.wait(self._flush_s):
            self.flush()


class MetricsReceiver:
    """The supervisor's end: records every worker's samples in one sink, hands their sidecar
    counter snapshots to ``on_counters``, their deployment scores to ``on_scores`` and their
    multi-model cache states to ``on_caches``, and keeps the invocation rate the autoscaler
    tracks."""

    def __init__(
        self,
        channel: Any,
        sink: MetricsSink,
        rate_window_s: float = 60.0,
        on_counters: Callable[[int, SidecarCounts], None] | None = None,
        on_scores: Callable[[list[ScoreBatch]], None] | None = None,
        on_caches: Callable[[int, dict[str, CacheState]], None] | None = None,
    ) -> None:
        self._channel = channel
        self._sink = sink
        self._on_counters = on_counters
        self._on_scores = on_scores
        self._on_caches = on_caches
        self.rate_window_s = rate_window_s
        self._arrivals: deque[tuple[float, int]] = deque()
        self.ready: set[int] = set()  # pids of workers that loaded their models
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def invocations_per_min(self) -> float:
        """Invocations per minute over the last ``rate_window_s``."""
        now = time.monotonic()
        with self._lock:
            while self._arrivals and self._arrivals[0][0] < now - self.rate_window_s:
                self._arrivals.popleft()
            count = sum(n for _, n in self._arrivals)
        return count * 60.0 / self.rate_window_s

    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind, pid = message[0], message[1]
        if kind == "ready":  # a worker loaded its models
            self.ready.add(pid)
        elif kind == "sidecars" and self._on_counters is not None:
            try:
                self._on_counters(pid, message[2])
            except Exception:  # counters must never stop the invocation metrics
                _log.exception("could not apply worker %d's sidecar counters", pid)
        elif kind == "scores" and self._on_scores is not None:
            try:
                self._on_scores(message[2])
            except Exception:  # nor must scores
                _log.exception("could not keep worker %d's deployment scores", pid)
        elif kind == "caches" and self._on_caches is not None:
            self._on_caches(pid, message[2])  # a dict assignment: nothing to fail

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                batch: list[Invocation] | tuple[Any, ...] = self._channel.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError, ValueError):  # the queue closed: the server is stopping
                return
            if isinstance(batch, tuple):
                self._on_message(batch)
                continue
            with self._lock:
                self._arrivals.append((time.monotonic(), len(batch)))
            for invocation in batch:
                self._sink.record(invocation)


class ConfigFollower:
    """Keeps a worker's loaded endpoints on their committed configs (polled from metadata)."""

    def __init__(self, service: EndpointService, poll_s: float = 0.1) -> None:
        self.service = service
        self.poll_s = poll_s
        self._applied: dict[str, str] = {}  # endpoint -> config name now served
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-follower", daemon=True)

    def sync(self) -> list[str]:
        """Load what changed since the last call; returns the endpoints (re)loaded."""
        with self.service.meta.reading() as connection:
            rows = connection.execute(
                sa.select(endpoints.c.name, endpoints.c.status, endpoints.c.config_name)
            ).all()
        wanted = {name: config for name, status, config in rows if status in SERVING_STATUSES}
        for name in set(self._applied) - set(wanted):
            self.service.stop_serving(name)
            del self._applied[name]
        changed = []
        for name, config in wanted.items():
            if self._applied.get(name) == config:
                continue
            self.service.follow(name)
            self._applied[name] = config
            changed.append(name)
        return changed

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.wait(self.poll_s):
            try:
                self.sync()
            except Exception:  # a failed load keeps the last good model serving; retry
                _log.exception("worker %d could not follow the endpoint configs", os.getpid())


def worker_app(
    service: EndpointService,
    *,
    management_url: str,
    api_keys: str | None,
    timeout_s: float,
    on_start: Callable[[], None],
    on_stop: Callable[[], None],
) -> Starlette:
    """An inference worker's app: invocation routes here, everything else to the supervisor."""
    client = httpx.AsyncClient(base_url=management_url, timeout=None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        on_start()
        try:
            yield
        finally:
            on_stop()
            await client.aclose()

    async def forward(request: Request) -> Response:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = [(k, v) for k, v in request.headers.items() if k not in _HOP_HEADERS]
        try:
            answer = await client.request(
                request.method, path, content=await request.body(), headers=headers
            )
        except httpx.TransportError as exc:
            return JSONResponse(
                {"message": f"the management process is unreachable: {exc}"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        kept = {
            k: v for k, v in answer.headers.items() if k not in _HOP_HEADERS | {"content-encoding"}
        }
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    local: list[BaseRoute] = [
        route
        for route in create_routes(service, timeout_s=timeout_s)
        if not getattr(route, "path", "").startswith("/api/")
    ]
    return Starlette(
        routes=[*local, Route("/{path:path}", forward, methods=_METHODS)],
        lifespan=lifespan,
        middleware=api_key_middleware(api_keys),
        exception_handlers=http_error_handlers(),
    )


def watch_parent(
    on_orphaned: Callable[[], None], parent_pid: int, period_s: float = 0.2
) -> threading.Thread:
    """Call ``on_orphaned`` once ``parent_pid``, the process that spawned this one, is gone (a
    killed supervisor must not leave workers accepting on its socket). The pid comes from the
    spawner, not ``os.getppid()`` here: the supervisor may die while this worker starts."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(period_s)
        on_orphaned()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


WorkerMain = Callable[..., None]


class WorkerPool:
    """Spawned worker processes accepting on one shared socket; resized by :meth:`scale_to`.

    Scaling in sends SIGTERM to the newest worker: uvicorn stops accepting, finishes the
    requests it holds, then exits, so no request is dropped.
    """

    def __init__(self, main: WorkerMain, sock: socket.socket, *args: Any) -> None:
        self._main = main
        self._socket = sock
        self._args = args
        self._workers: list[SpawnProcess] = []
        self._retiring: list[SpawnProcess] = []  # told to stop, finishing their requests
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Workers serving or starting (not those finishing after a scale-in)."""
        with self._lock:
            self._retiring = [w for w in self._retiring if w.is_alive()]  # reaps the exited
            return sum(1 for w in self._workers if w.exitcode is None)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._workers if w.pid is not None]

    def scale_to(self, count: int) -> None:
        with self._lock:
            self._workers = [w for w in self._workers if w.exitcode is None]
            while len(self._workers) < count:
                worker = _SPAWN.Process(
                    target=self._main, args=(self._socket, *self._args), daemon=True
                )
                worker.start()
                self._workers.append(worker)
            while len(self._workers) > count:
                retired = self._workers.pop()
                if retired.pid is not None:
                    os.kill(retired.pid, signal.SIGTERM)
                    self._retiring.append(retired)

    def replace_dead(self) -> int:
        """Start a new worker for each that died unasked; returns how many were replaced."""
        with self._lock:
            alive = [w for w in self._workers if w.exitcode is None]
            dead = len(self._workers) - len(alive)
            self._workers = alive
        if dead:
            _log.warning("%d worker(s) died; starting replacements", dead)
            self.scale_to(len(alive) + dead)
        return dead

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            workers, self._workers = [*self._workers, *self._retiring], []
            self._retiring = []
        for worker in workers:
            if worker.exitcode is None and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            worker.join(timeout=max(0.1, deadline - time.monotonic()))
            if worker.exitcode is None:
                worker.kill()
                worker.join(timeout=2)
