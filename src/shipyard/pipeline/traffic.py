"""A small closed-loop load generator: a few client threads sending one event per request."""

from __future__ import annotations

import itertools
import multiprocessing
import multiprocessing.queues
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event

import httpx

from shipyard.core.config import auth_headers, load_settings


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent, how it ended, and which model version answered."""

    sent_s: float
    seconds: float
    status: int  # 0: no response at all (connection failed or timed out): a lost request
    error_type: str
    model_version: str


@dataclass
class TrafficReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    @property
    def ok(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 200)

    @property
    def model_errors(self) -> int:
        return sum(1 for o in self.outcomes if o.error_type == "ModelError")

    @property
    def lost(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 0)

    def latency_ms(self, quantile: float) -> float:
        values = sorted(o.seconds for o in self.outcomes if o.status == 200)
        if not values:
            return float("nan")
        return 1000 * values[min(len(values) - 1, int(quantile * len(values)))]

    def between(self, start_s: float, end_s: float) -> TrafficReport:
        return TrafficReport([o for o in self.outcomes if start_s <= o.sent_s < end_s])


class TrafficGenerator:
    """Sends ``bodies`` round-robin to one endpoint until stopped, from a separate process.

    The clients run in their own process so that they do not compete with an in-process
    server for the interpreter lock: the latencies they see are the server's, not theirs.
    """

    def __init__(
        self, url: str, endpoint: str, bodies: list[bytes], *, concurrency: int = 4
    ) -> None:
        self.invoke_url = f"{url}/endpoints/{endpoint}/invocations"
        self.bodies = bodies
        self.concurrency = concurrency
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._results: multiprocessing.queues.Queue[list[Outcome]] = context.Queue()
        self._process = context.Process(
            target=_client_process,
            args=(self.invoke_url, bodies, concurrency, self._ready, self._stop, self._results),
            name="shipyard-traffic",
            daemon=True,
        )

    def start(self) -> TrafficGenerator:
        """Start the clients; returns once they are sending."""
        self._process.start()
        if not self._ready.wait(timeout=60):
            self._process.kill()
            raise RuntimeError("the traffic generator did not start within 60 s")
        return self

    def stop(self) -> TrafficReport:
        self._stop.set()
        outcomes = self._results.get(timeout=60)
        self._process.join(timeout=10)
        return TrafficReport(sorted(outcomes, key=lambda o: o.sent_s))


def _client_process(
    url: str,
    bodies: list[bytes],
    concurrency: int,
    ready: Event,
    stop: Event,
    results: multiprocessing.queues.Queue[list[Outcome]],
) -> None:
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    counter = itertools.count()

    def client() -> None:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   **auth_headers(load_settings().api_key)}  # fmt: skip
        # httpx leaves Nagle's algorithm on; with delayed ACKs that adds ~40 ms per request.
        transport = httpx.HTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        with httpx.Client(timeout=10.0, transport=transport) as http:
            while not stop.is_set():
                body = bodies[next(counter) % len(bodies)]
                sent = time.time()
                started = time.perf_counter()
                try:
                    response = http.post(url, content=body, headers=headers)
                    status = response.status_code
                    error_type = response.headers.get("x-amzn-ErrorType", "")
                    version = response.headers.get("X-Shipyard-Model-Version", "")
                except httpx.HTTPError as exc:
                    status, error_type, version = 0, type(exc).__name__, ""
                outcome = Outcome(sent, time.perf_counter() - started, status, error_type, version)
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.set()
    stop.wait()
    for thread in threads:
        thread.join(timeout=30)
    results.put(outcomes)
