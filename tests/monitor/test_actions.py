"""Alarm actions: webhooks (retried, never blocking evaluation) and pipeline runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from shipyard.core.config import Settings
from shipyard.core.errors import InvalidRequestError
from shipyard.monitor import ALARM, OK, AlarmActions, AlarmManager, AlarmNotice, AlarmSpec
from shipyard.pipeline import Workspace


class Receiver:
    """A real HTTP server answering each POST with the next status of ``statuses``."""

    def __init__(self, statuses: list[int], delay_s: float = 0.0) -> None:
        self.statuses = statuses
        self.delay_s = delay_s
        self.bodies: list[dict[str, Any]] = []
        self.times: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(orjson.loads(self.rfile.read(length)))
                receiver.times.append(time.monotonic())
                time.sleep(receiver.delay_s)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    opened = Workspace.open(settings)
    yield opened
    opened.close()


def _actions(workspace: Workspace, **options: Any) -> AlarmActions:
    return AlarmActions(
        workspace.rollbacks, workspace.metrics, workspace.endpoints, workspace.meta,
        webhook_backoff_s=0.05, **options,
    )  # fmt: skip


def _manager(workspace: Workspace, actions: AlarmActions) -> AlarmManager:
    return AlarmManager(workspace.metrics, workspace.meta, on_transition=actions.on_transition)


def _spec(**overrides: Any) -> AlarmSpec:
    values: dict[str, Any] = {
        "name": "latency", "metric": "ModelLatency", "endpoint": "fraud", "statistic": "p99",
        "threshold": 150_000.0, "period_s": 1, "treat_missing_data": "notBreaching",
    }  # fmt: skip
    return AlarmSpec(**{**values, **overrides})


def _action_events(workspace: Workspace, alarm: str) -> list[str]:
    return [e["reason"] for e in workspace.alarms.events(alarm) if e["action"] == "action"]


def test_a_webhook_is_retried_with_backoff_until_delivered(workspace: Workspace) -> None:
    receiver = Receiver([503, 503, 200])
    actions = _actions(workspace)
    try:
        manager = _manager(workspace, actions)
        manager.put(_spec(actions=(f"webhook:{receiver.url}",), description="p99 too slow"))
        manager.set_state("latency", ALARM, reason="drill")
        assert actions.flush(timeout_s=10)
    finally:
        actions.close()
        receiver.close()
    assert len(receiver.bodies) == 3
    gaps = [b - a for a, b in zip(receiver.times, receiver.times[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # exponential backoff
    message = receiver.bodies[-1]
    assert (message["AlarmName"], message["OldStateValue"], message["NewStateValue"]) == (
        "latency", "INSUFFICIENT_DATA", "ALARM"
    )  # fmt: skip
    assert message["AlarmDescription"] == "p99 too slow"
    assert "drill" in message["NewStateReason"]
    trigger = message["Trigger"]
    assert (trigger["MetricName"], trigger["ExtendedStatistic"], trigger["Threshold"]) == (
        "ModelLatency", "p99", 150_000.0
    )  # fmt: skip
    assert trigger["Dimensions"] == [{"name": "EndpointName", "value": "fraud"}]
    assert _action_events(workspace, "latency") == [
        f"webhook {receiver.url} delivered (HTTP 200, attempt 3)"
    ]


def test_a_refusing_receiver_is_not_retried(workspace: Workspace) -> None:
    receiver = Receiver([400])
    actions = _actions(workspace)
    try:
        manager = _manager(workspace, actions)
        manager.put(_spec(actions=(f"webhook:{receiver.url}",)))
        manager.set_state("latency", ALARM, reason="drill")
        assert actions.flush(timeout_s=10)
    finally:
        actions.close()
        receiver.close()
    assert len(receiver.bodies) == 1
    assert _action_events(workspace, "latency") == [
        f"webhook {receiver.url} not delivered: HTTP 400"
    ]


def test_a_slow_webhook_never_delays_evaluation(workspace: Workspace) -> None:
    receiver = Receiver([200], delay_s=2.0)
    actions = _actions(workspace)
    try:
        manager = _manager(workspace, actions)
        manager.put(_spec(actions=(f"webhook:{receiver.url}",), ok_actions=("rollback",)))
        started = time.perf_counter()
        manager.set_state("latency", ALARM, reason="drill")
        manager.evaluate(now=time.time())  # back to OK (no data, notBreaching)
        elapsed = time.perf_counter() - started
        assert manager.state("latency") == OK
        assert elapsed < 0.5, f"evaluation waited {elapsed:.2f} s for the webhook"
        assert actions.flush(timeout_s=10)
    finally:
        actions.close()
        receiver.close()
    assert len(receiver.bodies) == 1
    # The OK action, a rollback of an endpoint that does not exist, failed and said so.
    assert any("rollback failed: endpoint 'fraud' does not exist" in r
               for r in _action_events(workspace, "latency"))  # fmt: skip


def test_pipeline_actions_run_registered_callables(workspace: Workspace) -> None:
    actions = _actions(workspace)
    seen: list[AlarmNotice] = []
    actions.register_pipeline("retrain", seen.append)
    actions.register_pipeline("broken", lambda notice: 1 / 0)
    try:
        manager = _manager(workspace, actions)
        spec = _spec(
            actions=("pipeline:retrain", "pipeline:broken"),
            insufficient_data_actions=("pipeline:retrain",),
        )
        manager.put(actions.check(spec))
        manager.set_state("latency", ALARM, reason="drill")
        manager.set_state("latency", "INSUFFICIENT_DATA", reason="again")
        assert actions.flush(timeout_s=10)
        with pytest.raises(InvalidRequestError, match="no pipeline action 'x'; pipelines: broken"):
            actions.check(_spec(ok_actions=("pipeline:x",)))
        manager.put(_spec(name="quiet", actions=("pipeline:retrain",), actions_enabled=False))
        manager.set_state("quiet", ALARM, reason="disabled actions")
        assert actions.flush(timeout_s=10)
    finally:
        actions.close()
    assert [n.transition.to_state for n in seen] == [ALARM, "INSUFFICIENT_DATA"]
    assert seen[0].spec.name == "latency"
    events = _action_events(workspace, "latency")
    assert "pipeline retrain ran" in events
    assert "pipeline broken failed: division by zero" in events
    assert _action_events(workspace, "quiet") == []
