"""A small closed-loop load generator: a few client threads sending one event per request."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import httpx


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
    """Sends ``bodies`` round-robin to one endpoint from ``concurrency`` threads until stopped."""

    def __init__(
        self, url: str, endpoint: str, bodies: list[bytes], *, concurrency: int = 4
    ) -> None:
        self.invoke_url = f"{url}/endpoints/{endpoint}/invocations"
        self.bodies = bodies
        self.concurrency = concurrency
        self.report = TrafficReport()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._next = itertools.count()

    def start(self) -> TrafficGenerator:
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"traffic-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> TrafficReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.report

    def _run(self) -> None:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.is_set():
                body = self.bodies[next(self._next) % len(self.bodies)]
                sent = time.time()
                started = time.perf_counter()
                try:
                    response = client.post(self.invoke_url, content=body, headers=headers)
                    status = response.status_code
                    error_type = response.headers.get("x-amzn-ErrorType", "")
                    version = response.headers.get("X-Shipyard-Model-Version", "")
                except httpx.HTTPError as exc:
                    status, error_type, version = 0, type(exc).__name__, ""
                outcome = Outcome(sent, time.perf_counter() - started, status, error_type, version)
                with self._lock:
                    self.report.outcomes.append(outcome)
