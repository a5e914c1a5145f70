"""The multi-process server: a supervisor that owns the workspace, and inference workers.

See :mod:`shipyard.serve.workers` for the process model. This module only wires it: what a
worker process opens (metadata, object store, registry; never the stream or the alarms), and
what the supervisor runs beside its management app (the pool, the metrics receiver, the
autoscaler, and a watch that replaces workers that die).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import socket
import threading
import time
from typing import Any

import uvicorn

from shipyard.core.config import Settings
from shipyard.core.errors import StorageError
from shipyard.pipeline.workspace import Workspace, capture_policy
from shipyard.registry import ModelRegistry
from shipyard.serve import EndpointService
from shipyard.serve.autoscale import Autoscaler, ScalingPolicy
from shipyard.serve.batching import BatchPolicy, configure_batching
from shipyard.serve.runtime import freeze_loaded_heap
from shipyard.serve.score_samples import ScoreSamples
from shipyard.serve.sidecar_metrics import WorkerSidecarCounts, cache_states, sidecar_counts
from shipyard.serve.workers import (
    SERVING_STATUSES,
    ConfigFollower,
    MetricsForwarder,
    MetricsReceiver,
    WorkerPool,
    watch_parent,
    worker_app,
)
from shipyard.storage import MetadataStore, ObjectStore

_log = logging.getLogger(__name__)


def batch_policy_of(settings: Settings) -> BatchPolicy:
    return BatchPolicy(settings.batch_max_size, settings.batch_max_wait_ms / 1000)


def scaling_policy_of(settings: Settings) -> ScalingPolicy | None:
    """Autoscaling from ``SHIPYARD_AUTOSCALE_*``; None when no maximum is set."""
    if settings.autoscale_max_workers is None:
        return None
    return ScalingPolicy(
        min_workers=settings.worker_count,
        max_workers=settings.autoscale_max_workers,
        target_invocations_per_worker_per_min=settings.autoscale_target,
        scale_out_cooldown_s=settings.autoscale_out_cooldown_s,
        scale_in_cooldown_s=settings.autoscale_in_cooldown_s,
    )


def run_worker(sock: socket.socket, settings: Settings, channel: Any, management_url: str) -> None:
    """A worker process's main: serve invocations on ``sock`` until told to stop."""
    spawner = multiprocessing.parent_process()
    parent_pid = -1 if spawner is None or spawner.pid is None else spawner.pid
    logging.basicConfig(level=logging.WARNING)
    configure_batching(batch_policy_of(settings))
    meta = MetadataStore(settings.resolved_database_url, migrate=False)
    forwarder = MetricsForwarder(channel)
    # The workspace's capture policy, or a worker would capture card_id in clear.
    service = EndpointService(
        meta,
        ObjectStore(settings.resolved_store_url),
        ModelRegistry(meta),
        forwarder,
        capture_policy=capture_policy(settings),
    )
    forwarder.counters = functools.partial(sidecar_counts, service)
    service.scores = ScoreSamples(forward=True)  # the guardrail judges them in the supervisor
    forwarder.scores = service.scores.take
    forwarder.caches = functools.partial(cache_states, service)
    follower = ConfigFollower(service)
    keys = settings.api_keys

    def on_start() -> None:
        watch_parent(lambda: setattr(server, "should_exit", True), parent_pid)
        forwarder.start()
        follower.sync()  # models loaded and warmed before the first accept
        freeze_loaded_heap()
        follower.start()
        channel.put(("ready", multiprocessing.current_process().pid))

    def on_stop() -> None:
        follower.stop()
        service.close()
        forwarder.stop()

    app = worker_app(
        service,
        management_url=management_url,
        api_keys=None if keys is None else keys.get_secret_value(),
        timeout_s=settings.request_timeout_s,
        on_start=on_start,
        on_stop=on_stop,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    try:
        server.run(sockets=[sock])
    finally:
        meta.dispose()


def largest_instance_count(service: EndpointService) -> int:
    """The largest InitialInstanceCount among the production variants of endpoints in service
    (0 with none). Every worker serves every endpoint, so N workers give each variant N
    instances: the pool needs the largest count, not the sum."""
    largest = 0
    for endpoint in service.list_endpoints():
        if endpoint.status in SERVING_STATUSES:
            largest = max([largest, *(v.instance_count for v in endpoint.variants)])
    return largest


class Supervisor:
    """Runs the worker pool for a workspace; the caller serves the management app on
    :attr:`management` (see ``serve_forever`` and ``BackgroundServer``).

    Without autoscaling the pool runs ``workers`` processes, or more when an endpoint in
    service asks for more instances (InitialInstanceCount), up to :attr:`max_workers` (one per
    core, or ``workers`` if higher): more processes than cores add memory, not throughput. With
    autoscaling the autoscaler owns the count, as SageMaker's scalable target does.
    """

    def __init__(
        self,
        workspace: Workspace,
        sock: socket.socket,
        *,
        workers: int,
        scaling: ScalingPolicy | None = None,
        rate_window_s: float = 60.0,
    ) -> None:
        from shipyard.pipeline.server import listen_socket  # server imports this module

        self.workers = workers
        self.max_workers = max(workers, os.cpu_count() or 1)
        self._service = workspace.endpoints
        sock.listen(2048)  # connections queue while the workers start, instead of refused
        self._channel = multiprocessing.get_context("spawn").Queue()
        self.receiver = MetricsReceiver(
            self._channel,
            workspace.metrics,
            rate_window_s,
            on_counters=WorkerSidecarCounts(workspace.endpoints).apply,
            on_scores=workspace.endpoints.scores.receive,
            on_caches=workspace.endpoints.worker_caches.apply,
        )
        self.management = listen_socket("127.0.0.1", 0)
        url = f"http://127.0.0.1:{self.management.getsockname()[1]}"
        self.pool = WorkerPool(run_worker, sock, workspace.settings, self._channel, url)
        self.autoscaler = (
            None
            if scaling is None
            else Autoscaler(
                scaling,
                rate=self.receiver.invocations_per_min,
                current=lambda: self.pool.size,
                scale_to=self.pool.scale_to,
            )
        )
        self._stopped = threading.Event()
        self._watch = threading.Thread(target=self._replace_dead, name="pool-watch", daemon=True)

    def start(self) -> None:
        self.receiver.start()
        if self.autoscaler is not None:
            policy = self.autoscaler.policy
            self.pool.scale_to(max(policy.min_workers, min(policy.max_workers, self.workers)))
        else:
            self.pool.scale_to(self.pool_target())
        if self.autoscaler is not None:
            self.autoscaler.start()
        self._watch.start()

    def wait_ready(self, count: int | None = None, timeout_s: float = 60.0) -> None:
        """Block until ``count`` (default: all) current workers have loaded their models."""
        deadline = time.monotonic() + timeout_s
        while True:
            wanted = self.pool.size if count is None else count
            ready = self.receiver.ready & set(self.pool.pids)
            if len(ready) >= wanted:
                return
            if time.monotonic() > deadline:
                raise StorageError(
                    f"{len(ready)} of {wanted} workers became ready within {timeout_s:.0f} s; "
                    "see the log above"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        self._stopped.set()
        if self.autoscaler is not None and self.autoscaler.is_running:
            self.autoscaler.stop()
        if self._watch.is_alive():
            self._watch.join(timeout=5)
        self.pool.stop()
        self.receiver.stop()
        self._channel.close()
        self._channel.join_thread()
        self.management.close()

    def pool_target(self) -> int:
        """Workers to run without autoscaling: ``workers``, raised to the largest instance
        count of the endpoints in service, at most ``max_workers``."""
        wanted = min(self.max_workers, largest_instance_count(self._service))
        return max(self.workers, wanted)

    def _replace_dead(self) -> None:
        while not self._stopped.wait(1.0):
            self.pool.replace_dead()
            self._service.worker_caches.retain(self.pool.pids)
            if self.autoscaler is not None:
                continue
            try:
                target = self.pool_target()
            except Exception:  # the metadata is unreachable: keep the pool as it is
                _log.exception("could not read the endpoints' instance counts")
                continue
            if self.pool.size != target:
                _log.info("instance counts ask for %d workers (had %d)", target, self.pool.size)
                self.pool.scale_to(target)
