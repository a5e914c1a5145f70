"""The HTTP server: serving routes plus the alarm loop, on uvicorn."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.core.errors import ConfigError, StorageError
from shipyard.ingest import DrainPolicy, DrainWorker, IngestMetrics, create_ingest_routes
from shipyard.pipeline.workspace import Workspace
from shipyard.serve import create_routes


def build_app(
    workspace: Workspace, *, alarm_period_s: int = 1, drain: DrainPolicy | None = None
) -> Starlette:
    """The Starlette app; on start-up it loads every InService endpoint and arms its alarms.

    With a ``drain`` policy it also lands every stream's records in the background and pushes
    back on ingest when a stream's drain falls too far behind.
    """
    registry = CollectorRegistry()
    ingest_metrics = IngestMetrics(registry, workspace.streams)
    worker = (
        None
        if drain is None
        else DrainWorker(workspace.streams, workspace.store, drain, ingest_metrics)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        workspace.endpoints.load_in_service()
        workspace.guard_endpoints(period_s=alarm_period_s)
        workspace.alarms.start()
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
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
        *create_routes(workspace.endpoints),
        *ingest_routes,
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


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
    """Serve on ``sock`` (from :func:`listen_socket`) until interrupted (``shipyard server``)."""
    settings = workspace.settings
    policy = DrainPolicy(
        flush_records=settings.drain_flush_records,
        flush_age_s=settings.drain_flush_age_s,
        tick_s=min(0.5, settings.drain_flush_age_s / 2),
        max_lag_records=settings.ingest_max_lag_records,
    )
    app = build_app(workspace, drain=policy)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """Runs the server in a thread on a free loopback port (the demo and the tests use it)."""

    def __init__(
        self,
        workspace: Workspace,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        drain: DrainPolicy | None = None,
    ) -> None:
        self.host = host
        self._socket = listen_socket(host, port)
        self.port = self._socket.getsockname()[1]
        app = build_app(workspace, drain=drain)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
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
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
