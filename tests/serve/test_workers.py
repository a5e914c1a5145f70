"""Worker processes: one socket, a supervisor owning the workspace, changes reaching every
worker, metrics totalled across workers, and a model swap under load that no client notices."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time

import httpx
import numpy as np
import orjson

from shipyard.core.types import ModelRef
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.train import TrainResult
from tests.serve.conftest import register


def _body(trained: TrainResult, rows: int = 1, offset: int = 0) -> bytes:
    events = trained.holdout_events.slice(offset, rows).drop("is_fraud")
    return orjson.dumps(events.to_dicts())


def _metric(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in a Prometheus exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and (line[len(name)] in " {")
    )


def test_two_worker_processes_serve_and_metrics_total_across_them(
    deployed: Workspace, trained: TrainResult
) -> None:
    with BackgroundServer(deployed, workers=2) as server:
        assert server.supervisor is not None
        pids = server.supervisor.pool.pids
        assert len(pids) == 2 and server.supervisor.receiver.ready >= set(pids)
        url = f"{server.url}/endpoints/fraud/invocations"
        with httpx.Client() as client:
            for i in range(40):
                # A new connection each time, so the kernel spreads them over both workers.
                answer = httpx.post(
                    url, content=_body(trained, 3, i), headers={"Content-Type": "application/json"}
                )
                assert answer.status_code == 200, answer.text
                scores = [p["fraud_probability"] for p in answer.json()["predictions"]]
                np.testing.assert_allclose(scores, trained.holdout_scores[i : i + 3], atol=1e-6)
            # Management routes are forwarded to the supervisor, which owns the workspace.
            described = client.get(f"{server.url}/api/v1/endpoints/fraud")
            assert described.status_code == 200
            assert described.json()["EndpointStatus"] == "InService"
            deadline = time.monotonic() + 5
            while True:  # workers send their samples every 50 ms
                exposed = client.get(f"{server.url}/metrics").text
                if _metric(exposed, "shipyard_invocations_total") >= 40:
                    break
                assert time.monotonic() < deadline, exposed
                time.sleep(0.05)
        assert _metric(exposed, "shipyard_invocations_total") == 40
        assert _metric(exposed, "shipyard_workers") == 2
        assert _metric(exposed, "shipyard_overhead_latency_seconds_count") == 40
        requests = deployed.metrics.requests(
            endpoint="fraud", variant=None, start_s=time.time() - 60, end_s=time.time() + 1
        )
        assert requests == 40  # the store the alarms read saw every worker's requests
    for pid in pids:  # the workers are gone with the server
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} outlived the server")


def test_a_swap_under_load_fails_no_request_and_reaches_every_worker(
    deployed: Workspace, trained: TrainResult
) -> None:
    v2 = register(deployed, trained.contents)
    with BackgroundServer(deployed, workers=2) as server:
        url = f"{server.url}/endpoints/fraud/invocations"
        failures: list[str] = []
        versions: list[tuple[float, str]] = []
        latencies: list[tuple[float, float]] = []  # (sent at, seconds)
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client() as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    answer = client.post(
                        url, content=_body(trained), headers={"Content-Type": "application/json"}
                    )
                    latencies.append((time.monotonic(), time.perf_counter() - started))
                    if answer.status_code != 200:
                        failures.append(answer.text)
                    versions.append((time.monotonic(), answer.headers["X-Shipyard-Model-Version"]))

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            running = [pool.submit(hammer) for _ in range(4)]
            time.sleep(0.5)
            swapped_at = time.monotonic()
            deployed.endpoints.route_all("fraud", v2, actor="test", reason="swap under load")
            time.sleep(1.5)
            stop.set()
            for future in running:
                future.result()
        assert not failures, failures[:3]
        assert len(versions) > 50
        # Every worker follows within ~100 ms of polling plus a model load.
        late = [t - swapped_at for t, v in versions if v == str(ModelRef("fraud", 1))]
        assert max(late, default=0.0) < 1.0, max(late)
        assert versions[-1][1] == str(v2)
        # No request stalled during the swap beyond what the same load saw before it (the
        # machine's own jitter, e.g. other tests, shows up in both windows alike).
        before = [s for t, s in latencies if 0.2 < swapped_at - t]
        during = [s for t, s in latencies if 0 <= t - swapped_at < 1.0]
        assert before and during
        slowest_allowed = max(0.25, 5 * float(np.percentile(before, 99)))
        assert max(during) < slowest_allowed, (max(during), slowest_allowed)
