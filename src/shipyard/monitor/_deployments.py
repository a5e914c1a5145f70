"""The shape of serve's blue/green deployments as the monitor sees them (serve implements it;
the monitor never imports serve)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from shipyard.core.types import ModelRef


class DeploymentView(Protocol):
    """Where one endpoint's blue/green deployment stands."""

    @property
    def endpoint(self) -> str: ...
    @property
    def status(self) -> str: ...  # Updating, or RollingBack when a rollback was interrupted
    @property
    def config_name(self) -> str: ...  # the step config in force
    @property
    def steps(self) -> tuple[float, ...]: ...  # the new fleet's share after each shift
    @property
    def step(self) -> int: ...
    @property
    def share(self) -> float: ...
    @property
    def last_step(self) -> bool: ...
    @property
    def started_s(self) -> float: ...
    @property
    def step_started_s(self) -> float: ...  # when the step in force was shifted
    @property
    def blue_variants(self) -> tuple[str, ...]: ...
    @property
    def green_variants(self) -> tuple[str, ...]: ...
    @property
    def blue_ref(self) -> ModelRef: ...
    @property
    def green_ref(self) -> ModelRef: ...
    @property
    def summary(self) -> str: ...
    @property
    def wait_s(self) -> float: ...
    @property
    def termination_wait_s(self) -> float: ...
    @property
    def max_execution_s(self) -> float: ...
    @property
    def alarms(self) -> tuple[str, ...]: ...
    @property
    def min_requests(self) -> int: ...
    @property
    def drift_statistic(self) -> str | None: ...
    @property
    def drift_threshold(self) -> float: ...


class DeploymentTraffic(Protocol):
    """Steps, completes and aborts blue/green deployments; implemented by serve."""

    def deploying(self) -> list[str]: ...

    def progress(self, endpoint: str) -> DeploymentView | None: ...

    def shift(self, endpoint: str, step: int, *, reason: str) -> bool: ...

    def complete(self, endpoint: str, *, reason: str) -> bool: ...

    def abort(self, endpoint: str, *, actor: str, reason: str) -> DeploymentView | None:
        """All traffic back to the old fleet at once; None when nothing was deploying."""
        ...

    def score_samples(
        self, endpoint: str, variants: tuple[str, ...], start_s: float, end_s: float
    ) -> np.ndarray: ...
