"""Autoscaling: target tracking on invocations per worker per minute, with cooldowns; and a
load step against a real server that adds a worker process, then removes it."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest

from shipyard.core.errors import ConfigError
from shipyard.pipeline import BackgroundServer, Workspace
from shipyard.serve.autoscale import Autoscaler, ScalingPolicy
from shipyard.train import TrainResult


class _World:
    """A fake clock, rate and pool for the policy alone."""

    def __init__(self) -> None:
        self.now = 0.0
        self.rate = 0.0
        self.workers = 1

    def scale_to(self, count: int) -> None:
        self.workers = count


def _scaler(world: _World, **overrides: float) -> Autoscaler:
    settings: dict[str, float] = dict(
        min_workers=1, max_workers=4, target_invocations_per_worker_per_min=600,
        scale_out_cooldown_s=10, scale_in_cooldown_s=60,
    )  # fmt: skip
    settings.update(overrides)
    return Autoscaler(
        ScalingPolicy(**settings),  # type: ignore[arg-type]
        rate=lambda: world.rate,
        current=lambda: world.workers,
        scale_to=world.scale_to,
        clock=lambda: world.now,
    )


def test_target_tracking_with_cooldowns_and_bounds() -> None:
    world = _World()
    scaler = _scaler(world)
    world.rate = 1500  # 2.5 workers' worth at 600 per worker per minute
    assert scaler.step() == 3 and world.workers == 3
    world.rate, world.now = 6000, 5  # wants 10, capped at 4, but the out-cooldown holds
    assert scaler.step() == 3
    world.now = 10
    assert scaler.step() == 4
    world.rate, world.now = 100, 30  # quiet: in-cooldown counts from the last scaling
    assert scaler.step() == 4
    world.now = 70
    assert scaler.step() == 1 and world.workers == 1  # never below min
    assert [(f, t) for _, f, t in scaler.decisions] == [(1, 3), (3, 4), (4, 1)]


def test_scaling_policy_refuses_bad_bounds() -> None:
    with pytest.raises(ConfigError, match="min workers"):
        ScalingPolicy(min_workers=3, max_workers=2, target_invocations_per_worker_per_min=1)
    with pytest.raises(ConfigError, match="target"):
        ScalingPolicy(min_workers=1, max_workers=2, target_invocations_per_worker_per_min=0)


@pytest.mark.slow
def test_a_load_step_adds_a_worker_and_the_lull_removes_it(
    deployed: Workspace, trained: TrainResult
) -> None:
    policy = ScalingPolicy(
        min_workers=1, max_workers=2, target_invocations_per_worker_per_min=600,
        scale_out_cooldown_s=0, scale_in_cooldown_s=2, period_s=0.25,
    )  # fmt: skip
    body = orjson.dumps(trained.holdout_events.head(1).drop("is_fraud").to_dicts())
    with BackgroundServer(deployed, scaling=policy, rate_window_s=2) as server:
        assert server.supervisor is not None
        pool = server.supervisor.pool
        assert pool.size == 1
        stop = threading.Event()
        failures: list[int] = []

        def load() -> None:  # well above 10 requests/s, one worker's target
            with httpx.Client() as client:
                while not stop.is_set():
                    answer = client.post(
                        f"{server.url}/endpoints/fraud/invocations",
                        content=body,
                        headers={"Content-Type": "application/json"},
                    )
                    if answer.status_code != 200:
                        failures.append(answer.status_code)
                    time.sleep(0.01)

        threads = [threading.Thread(target=load) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 30
            while pool.size < 2:
                assert time.monotonic() < deadline, "no worker was added under load"
                time.sleep(0.1)
            server.supervisor.wait_ready(2, timeout_s=30)
            exposed = httpx.get(f"{server.url}/metrics").text
            assert "shipyard_workers 2.0" in exposed
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        deadline = time.monotonic() + 20
        while pool.size > 1:
            assert time.monotonic() < deadline, "the idle worker was never removed"
            time.sleep(0.1)
        assert not failures
        decisions = server.supervisor.autoscaler.decisions  # type: ignore[union-attr]
        assert [(f, t) for _, f, t in decisions] == [(1, 2), (2, 1)]
