"""Benchmark: what data capture at 100 % costs in throughput, against capture off.

One server (loopback, in-process, 1 worker) serves two endpoints on the same XGBoost fraud model:
one without capture, one capturing Input and Output of every request to the object store.
A separate load process sends single-row JSON requests at a fixed concurrency, alternating
between the endpoints run by run, so drift affects both alike. Prints requests/s, p50 and p99 of
each, the server's CPU time per request, and the cost of capture (medians, and the median of
run pairs, which cancels drift on a shared machine). Goal (issue 6): capture at 100 % costs at
most 10 % of throughput. There is no peer here: SageMaker's capture runs outside the
container. The worker engineer's bench/serve.py measures the full serving path with wrk.

    .venv/bin/python bench/capture.py [--seconds 8] [--concurrency 16] [--runs 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
import polars as pl

from shipyard.core.config import Settings
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.pipeline.packages import publish_package
from shipyard.scenarios.fraud import FraudScenario
from shipyard.serve import EndpointConfig, VariantSpec
from shipyard.serve.endpoint_config import DataCaptureConfig
from shipyard.train import TrainSpec, train_xgboost


def _load(
    url: str,
    body: bytes,
    seconds: float,
    concurrency: int,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run() -> None:
        with httpx.Client(timeout=10) as client:
            mine = []
            while time.monotonic() < stop:
                started = time.perf_counter()
                answer = client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
                mine.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    with lock:
                        errors[0] += 1
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((len(latencies) / seconds, latencies, errors[0]))


def _measure(
    url: str, body: bytes, seconds: float, concurrency: int
) -> tuple[float, float, float, int, float]:
    """(requests/s, p50 ms, p99 ms, errors, server CPU µs per request)."""
    out: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    process = multiprocessing.get_context("spawn").Process(
        target=_load, args=(url, body, seconds, concurrency, out)
    )
    cpu_started = time.process_time()  # this process is the server (and its capture writer)
    process.start()
    while True:  # a load process that died must fail the run, not hang it
        try:
            rate, latencies, errors = out.get(timeout=1.0)
            break
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError(f"the load process exited with {process.exitcode}") from None
    cpu_s = time.process_time() - cpu_started
    process.join()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return rate, p50, p99, errors, cpu_s / max(1, len(latencies)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    events = FraudScenario(seed=3).generate(20_000)
    raw, labels = pl.from_arrow(events.events), pl.from_arrow(events.labels)
    assert isinstance(raw, pl.DataFrame) and isinstance(labels, pl.DataFrame)
    frame = raw.join(labels.select("event_id", "is_fraud"), on="event_id")
    trained = train_xgboost(frame, TrainSpec(num_rounds=100, seed=1))
    body = orjson.dumps(trained.holdout_events.head(1).drop("is_fraud").to_dicts()[0])
    with tempfile.TemporaryDirectory() as home:
        workspace = Workspace.open(Settings(home=Path(home)))
        version = publish_package(workspace, "fraud", trained.contents)
        service = workspace.endpoints
        variant = (VariantSpec("AllTraffic", version.ref),)
        service.create_endpoint_config(EndpointConfig("off", variant))
        capture = DataCaptureConfig(100.0, json_content_types=("application/json",))
        service.create_endpoint_config(EndpointConfig("on", variant, data_capture=capture))
        service.create_endpoint("plain", config_name="off")
        service.create_endpoint("captured", config_name="on")
        results: dict[str, list[tuple[float, float, float, int, float]]] = {
            "plain": [],
            "captured": [],
        }
        with BackgroundServer(workspace) as server:
            for name in ("plain", "captured"):  # warm-up
                _measure(f"{server.url}/endpoints/{name}/invocations", body, 1.0, args.concurrency)
            for _ in range(args.runs):
                for name in ("plain", "captured"):
                    url = f"{server.url}/endpoints/{name}/invocations"
                    results[name].append(_measure(url, body, args.seconds, args.concurrency))
            service.capture.flush()
            stats = service.capture.stats.get(("captured", "AllTraffic"))
        workspace.close()
    for name, rows in results.items():
        rate = statistics.median(r[0] for r in rows)
        p50 = statistics.median(r[1] for r in rows)
        p99 = statistics.median(r[2] for r in rows)
        errors = sum(r[3] for r in rows)
        cpu = statistics.median(r[4] for r in rows)
        print(
            f"{name:9s} {rate:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"errors {errors}  server CPU {cpu:5.0f} µs/req"
        )
    # Each capture run against the plain run just before it: the machine's drift cancels.
    paired = [c[0] / p[0] for p, c in zip(results["plain"], results["captured"], strict=True)]
    cpu_paired = [c[4] / p[4] for p, c in zip(results["plain"], results["captured"], strict=True)]
    plain = statistics.median(r[0] for r in results["plain"])
    captured = statistics.median(r[0] for r in results["captured"])
    print(
        f"capture at 100 % costs {100 * (1 - captured / plain):.1f} % of throughput "
        f"(ratio {captured / plain:.3f}); records captured {stats.captured if stats else 0}, "
        f"dropped {stats.dropped if stats else 0}, files {stats.files if stats else 0}"
    )
    print(
        f"paired runs: median throughput cost {100 * (1 - statistics.median(paired)):.1f} %, "
        f"median server CPU per request +{100 * (statistics.median(cpu_paired) - 1):.1f} %"
    )


if __name__ == "__main__":
    main()
