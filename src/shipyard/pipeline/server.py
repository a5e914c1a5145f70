"""The HTTP server: serving routes plus the alarm loop and monitoring schedules, on uvicorn."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.core.errors import ConfigError, StorageError
from shipyard.ingest import DrainPolicy, DrainWorker, IngestMetrics, create_ingest_routes
from shipyard.monitor import EndpointMetricsCollector
from shipyard.pipeline.deployment import registry_routes
from shipyard.pipeline.landing import event_landing_schema
from shipyard.pipeline.monitoring import monitor_routes
from shipyard.pipeline.supervisor import Supervisor, batch_policy_of, scaling_policy_of
from shipyard.pipeline.workspace import Workspace
from shipyard.serve import (
    SidecarMetricsCollector,
    api_key_middleware,
    create_routes,
    http_error_handlers,
)
from shipyard.serve.autoscale import ScalingPolicy
from shipyard.serve.batching import configure_batching
from shipyard.serve.runtime import freeze_loaded_heap


def build_app(
    workspace: Workspace,
    *,
    alarm_period_s: int = 1,
    drain: DrainPolicy | None = None,
    workers: Callable[[], int] = lambda: 1,
    freeze_heap: bool = False,
) -> Starlette:
    """The Starlette app; on start-up it loads every InService endpoint and arms its alarms.

    With a ``drain`` policy it also lands every stream's records in the background and pushes
    back on ingest when a stream's drain falls too far behind.
    """
    configure_batching(batch_policy_of(workspace.settings))
    registry = CollectorRegistry()
    registry.register(_WorkerCount(workers))
    registry.register(EndpointMetricsCollector(workspace.metrics))
    registry.register(SidecarMetricsCollector(workspace.endpoints))
    ingest_metrics = IngestMetrics(registry, workspace.streams)
    worker = (
        None
        if drain is None
        else DrainWorker(
            workspace.streams,
            workspace.store,
            drain,
            ingest_metrics,
            schema=event_landing_schema(),
        )
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        workspace.endpoints.load_in_service()
        workspace.guard_endpoints(period_s=alarm_period_s)
        workspace.alarms.start()
        workspace.monitoring.start()
        workspace.guardrail.start()
        if worker is not None:
            worker.start()
        if freeze_heap:
            # After start-up, not before: the background services import most of the modules.
            freeze_loaded_heap()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            workspace.monitoring.stop()
            workspace.guardrail.stop()
            workspace.alarms.stop()
            workspace.streams.close()

    ingest_routes = create_ingest_routes(
        workspace.streams,
        max_lag_records=None if drain is None else drain.max_lag_records,
        metrics=ingest_metrics,
    )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        *create_routes(workspace.endpoints, timeout_s=workspace.settings.request_timeout_s),
        *registry_routes(workspace),
        *monitor_routes(workspace),
        *ingest_routes,
        Route("/metrics", metrics, methods=["GET"]),
    ]
    keys = workspace.settings.api_keys
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=api_key_middleware(None if keys is None else keys.get_secret_value()),
        exception_handlers=http_error_handlers(),
    )


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn, or a one-line error saying why it cannot be had."""
    # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every keep-alive response waits ~40 ms (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve_forever(workspace: Workspace, sock: socket.socket) -> None:
    """Serve on ``sock`` (from :func:`listen_socket`) until interrupted (``shipyard server``).

    With one worker and no autoscaling everything runs in this process; otherwise this process
    supervises inference worker processes (see :mod:`shipyard.serve.workers`).
    """
    settings = workspace.settings
    policy = DrainPolicy(
        flush_records=settings.drain_flush_records,
        flush_age_s=settings.drain_flush_age_s,
        tick_s=min(0.5, settings.drain_flush_age_s / 2),
        max_lag_records=settings.ingest_max_lag_records,
    )
    scaling = scaling_policy_of(settings)
    supervisor = None
    if settings.worker_count > 1 or scaling is not None:
        supervisor = Supervisor(workspace, sock, workers=settings.worker_count, scaling=scaling)
        pool = supervisor.pool
        app = build_app(workspace, drain=policy, workers=lambda: pool.size, freeze_heap=True)
        supervisor.start()
    else:
        app = build_app(workspace, drain=policy, freeze_heap=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        _Server(config).run(sockets=[sock if supervisor is None else supervisor.management])
    finally:
        if supervisor is not None:
            supervisor.stop()
        sock.close()


class _Server(uvicorn.Server):
    """uvicorn's server, except that SIGTERM or SIGINT ends :meth:`run` after the graceful
    shutdown instead of being raised again (which kills the process on SIGTERM): the
    supervisor then stops its workers, and the interpreter exits through its exit handlers
    (multiprocessing's release the semaphores of the workers' channel). Status 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only (a BackgroundServer)
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _WorkerCount:
    """The ``shipyard_workers`` gauge: inference processes serving right now."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("shipyard_workers", "Inference worker processes serving.")
        gauge.add_metric([], self._count())
        yield gauge


class BackgroundServer:
    """Runs the server in a thread on a free loopback port (the demo and the tests use it)."""

    def __init__(
        self,
        workspace: Workspace,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        drain: DrainPolicy | None = None,
        workers: int = 1,
        scaling: ScalingPolicy | None = None,
        rate_window_s: float = 60.0,
    ) -> None:
        self.host = host
        self._socket = listen_socket(host, port)
        self.port = self._socket.getsockname()[1]
        # workers > 1 or scaling: inference in worker processes, as `shipyard server` runs them.
        self.supervisor: Supervisor | None = None
        serving = self._socket
        if workers > 1 or scaling is not None:
            self.supervisor = Supervisor(
                workspace, self._socket, workers=workers, scaling=scaling,
                rate_window_s=rate_window_s,
            )  # fmt: skip
            pool = self.supervisor.pool
            app = build_app(workspace, drain=drain, workers=lambda: pool.size)
            serving = self.supervisor.management
        else:
            app = build_app(workspace, drain=drain)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [serving]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StorageError("the server did not start; see the log above")
            time.sleep(0.02)
        if self.supervisor is not None:
            try:
                self.supervisor.start()
                self.supervisor.wait_ready()
            except BaseException:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self.supervisor is not None:
            self.supervisor.stop()
        self._socket.close()
