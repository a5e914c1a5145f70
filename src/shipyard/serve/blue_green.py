"""Blue/green deployments: the new fleet (green) loads beside the old (blue) and takes traffic
in persisted steps.

Each step is a stored endpoint config holding both fleets, weighted by the green share, with
the deployment's progress under ``BlueGreenDeployment``; the endpoint points at it while it is
``Updating``. Because the split is committed like any config change, worker processes follow
it (serve.workers polls config names) and a restarted server loads it as it was: at every
committed moment one config with weight > 0 serves, so never neither fleet.

This module only moves traffic when told to; what decides (baking, alarms, minimum requests,
prediction drift, the execution timeout) is the guardrail of ``shipyard.monitor.guardrail``.
After a crash, an endpoint found mid-deployment keeps serving the split it had and the
guardrail *resumes* it: the current step bakes again from the restart (metrics do not survive
a restart, so the step is judged on a full fresh window), while the execution timeout still
counts from the deployment's start, so a crash loop cannot extend it. One found RollingBack is
finished rolling back to blue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import InvalidRequestError, ShipyardError, StateError
from shipyard.core.types import ModelRef
from shipyard.serve.deployment_config import (
    DeploymentConfig,
    deployment_from_document,
    deployment_to_document,
)
from shipyard.serve.endpoint_config import EndpointConfig
from shipyard.serve.endpoint_rows import (
    IN_SERVICE,
    ROLLING_BACK,
    UPDATING,
    endpoint_names,
    write_status,
)
from shipyard.serve.endpoint_store import variant_dicts

if TYPE_CHECKING:
    from shipyard.serve.endpoints import EndpointService

STATE_KEY = "BlueGreenDeployment"


def deployment_state(config: EndpointConfig) -> dict[str, Any] | None:
    state = config.extra.get(STATE_KEY)
    return state if isinstance(state, dict) else None


@dataclass(frozen=True)
class DeploymentProgress:
    """Where an endpoint's blue/green deployment stands (what the guardrail reads)."""

    endpoint: str
    status: str
    config_name: str  # the step config in force
    blue: EndpointConfig
    green: EndpointConfig
    deployment: DeploymentConfig
    steps: tuple[float, ...]
    step: int
    started_s: float
    step_started_s: float
    blue_variants: tuple[str, ...]  # their names in the step config
    green_variants: tuple[str, ...]
    state: dict[str, Any]  # as stored

    @property
    def share(self) -> float:
        return self.steps[self.step]

    @property
    def last_step(self) -> bool:
        return self.step == len(self.steps) - 1

    @property
    def green_ref(self) -> ModelRef:
        return max((v.model for v in self.green.variants), key=lambda r: r.version)

    @property
    def blue_ref(self) -> ModelRef:
        return max((v.model for v in self.blue.variants), key=lambda r: r.version)

    @property
    def wait_s(self) -> float:
        return self.deployment.wait_s

    @property
    def termination_wait_s(self) -> float:
        return self.deployment.termination_wait_s

    @property
    def max_execution_s(self) -> float:
        return self.deployment.max_execution_s

    @property
    def alarms(self) -> tuple[str, ...]:
        return self.deployment.alarms

    @property
    def min_requests(self) -> int:
        return self.deployment.min_requests

    @property
    def drift_statistic(self) -> str | None:
        return None if self.deployment.drift is None else self.deployment.drift.statistic

    @property
    def drift_threshold(self) -> float:
        return 0.0 if self.deployment.drift is None else self.deployment.drift.threshold

    @property
    def summary(self) -> str:
        return (
            f"{self.deployment.traffic_type} deployment {self.blue.name} -> {self.green.name}, "
            f"step {self.step + 1}/{len(self.steps)}: {self.share:.0%} on the new fleet"
        )

    def to_document(self) -> dict[str, Any]:
        """PendingDeploymentSummary-like, for DescribeEndpoint."""
        return {
            "EndpointConfigName": self.green.name,
            "PreviousEndpointConfigName": self.blue.name,
            "DeploymentConfig": deployment_to_document(self.deployment),
            "StartTime": _iso(self.started_s),
            "Step": self.step + 1,
            "Steps": len(self.steps),
            "NewFleetShare": self.share,
            "StepStartTime": _iso(self.step_started_s),
        }


class BlueGreenDeployments:
    """Starts, steps, completes and aborts blue/green deployments of one service's endpoints."""

    def __init__(self, service: EndpointService) -> None:
        self.service = service

    def start(
        self,
        name: str,
        green: EndpointConfig,
        deployment: DeploymentConfig,
        *,
        actor: str,
        reason: str,
    ) -> None:
        """Load ``green`` beside the serving config and give it the first share."""
        service = self.service
        with service._lock:
            current = service.describe(name)
            blue = current.config
            assert blue is not None
            if blue.multi_model is not None or green.multi_model is not None:
                raise InvalidRequestError(
                    "a multi-model endpoint cannot take a DeploymentConfig; update it without one"
                )
            instances = sum(v.instance_count for v in green.variants)
            steps = deployment.shares(instances)
            now = time.time()
            state = {
                "Blue": blue.name,
                "Green": green.name,
                "DeploymentConfig": deployment_to_document(deployment),
                "Instances": instances,
                "Steps": list(steps),
                "Step": 0,
                "StartedAt": now,
                "StepStartedAt": now,
            }
            why = reason or f"{deployment.traffic_type} deployment of {green.name}"
            step = self._step_config(name, blue, green, state, actor)
            write_status(
                service.meta, name, UPDATING, reason=why, actor=actor, action="deployment-start",
                details={"from_config": blue.name, "to_config": green.name, **state},
            )  # fmt: skip
            try:
                service._activate(name, step)
            except ShipyardError as exc:
                write_status(
                    service.meta, name, IN_SERVICE, actor=actor,
                    reason=f"deployment of {green.name} failed to load, still serving "
                    f"{blue.name}: {exc}",
                )  # fmt: skip
                raise
            self._commit(name, step, actor, f"step 1/{len(steps)}: {steps[0]:.0%} to the new "
                         f"fleet ({why})")  # fmt: skip

    def progress(self, name: str) -> DeploymentProgress | None:
        description = self.service.describe(name)
        config = description.config
        assert config is not None
        state = deployment_state(config)
        if state is None:
            return None
        return _progress(description.name, description.status, config, state, self.service)

    def deploying(self) -> list[str]:
        """Endpoints mid-deployment (only Updating or RollingBack ones can be)."""
        found = []
        for name in endpoint_names(self.service.meta, (UPDATING, ROLLING_BACK)):
            config = self.service.describe(name).config
            if config is not None and deployment_state(config) is not None:
                found.append(name)
        return found

    def shift(self, name: str, step: int, *, reason: str) -> bool:
        """Move to ``step`` (index); False when the deployment is no longer at ``step - 1``."""
        with self.service._lock:
            progress = self.progress(name)
            if progress is None or progress.status != UPDATING or progress.step != step - 1:
                return False
            state = {
                **progress.state,
                "Step": step,
                "StepStartedAt": time.time(),
            }
            config = self._step_config(name, progress.blue, progress.green, state, "guardrail")
            self.service._activate(name, config)
            self._commit(
                name, config, "guardrail",
                f"step {step + 1}/{len(progress.steps)}: {progress.steps[step]:.0%} to the new "
                f"fleet; {reason}",
            )  # fmt: skip
            return True

    def complete(self, name: str, *, reason: str) -> bool:
        """Serve the new fleet alone and retire the old one; False if not deploying."""
        with self.service._lock:
            progress = self.progress(name)
            if progress is None or progress.status != UPDATING:
                return False
            self.service._activate(name, progress.green)
            write_status(
                self.service.meta, name, IN_SERVICE, reason=f"deployment complete: {reason}",
                actor="guardrail", config_name=progress.green.name, action="deployment-complete",
                details={"variants": variant_dicts(progress.green)},
            )  # fmt: skip
            return True

    def abort(self, name: str, *, actor: str, reason: str) -> DeploymentProgress | None:
        """All traffic back to the old fleet in one step; None if not deploying.

        RollingBack is committed first, so a crash in between still ends on the old fleet.
        """
        with self.service._lock:
            progress = self.progress(name)
            if progress is None:
                return None
            if progress.status != ROLLING_BACK:
                write_status(self.service.meta, name, ROLLING_BACK, reason=reason, actor=actor)
            self.service._activate(name, progress.blue)
            write_status(
                self.service.meta, name, IN_SERVICE, reason=reason, actor=actor,
                config_name=progress.blue.name, action="deployment-rollback",
                details={"variants": variant_dicts(progress.blue)},
            )  # fmt: skip
            return progress

    def score_samples(
        self, name: str, variants: tuple[str, ...], start_s: float, end_s: float
    ) -> np.ndarray:
        return self.service.scores.between(name, variants, start_s, end_s)

    def _step_config(
        self,
        name: str,
        blue: EndpointConfig,
        green: EndpointConfig,
        state: dict[str, Any],
        actor: str,
    ) -> EndpointConfig:
        share = float(state["Steps"][state["Step"]])
        blue_names = _blue_names(blue, green)
        blue_total = sum(v.weight for v in blue.variants) or 1.0
        green_total = sum(v.weight for v in green.variants) or 1.0
        variants = [
            replace(v, name=n, weight=v.weight / blue_total * (1.0 - share))
            for v, n in zip(blue.variants, blue_names, strict=True)
        ] + [replace(v, weight=v.weight / green_total * share) for v in green.variants]
        state = {
            **state,
            "BlueVariants": blue_names,
            "GreenVariants": [v.name for v in green.variants],
        }
        config = EndpointConfig(
            f"{name}-bg-{time.time_ns()}",
            tuple(variants),
            data_capture=green.data_capture,
            extra={STATE_KEY: state},
        )
        self.service.configs.store(config, actor=actor)
        return config

    def _commit(self, name: str, config: EndpointConfig, actor: str, reason: str) -> None:
        state = deployment_state(config) or {}
        write_status(
            self.service.meta, name, UPDATING, reason=reason, actor=actor, config_name=config.name,
            action="deployment-shift",
            details={"variants": variant_dicts(config), "step": state.get("Step", 0) + 1},
        )  # fmt: skip


def _iso(at_s: float) -> str:
    return datetime.fromtimestamp(at_s, UTC).isoformat()


def _blue_names(blue: EndpointConfig, green: EndpointConfig) -> list[str]:
    """Old-fleet variant names, suffixed where the new fleet uses the same name: the new fleet
    keeps its final names throughout, so a per-variant alarm watches the new fleet only."""
    taken = {v.name for v in green.variants}
    names = []
    for variant in blue.variants:
        name = variant.name
        while name in taken:
            name = f"{name}-blue"
        taken.add(name)
        names.append(name)
    return names


def _progress(
    endpoint: str,
    status: str,
    config: EndpointConfig,
    state: dict[str, Any],
    service: EndpointService,
) -> DeploymentProgress:
    try:
        return DeploymentProgress(
            endpoint=endpoint,
            status=status,
            config_name=config.name,
            blue=service.configs.describe(state["Blue"]),
            green=service.configs.describe(state["Green"]),
            deployment=deployment_from_document(
                state["DeploymentConfig"], instances=int(state.get("Instances", 1))
            ),
            steps=tuple(float(s) for s in state["Steps"]),
            step=int(state["Step"]),
            started_s=float(state["StartedAt"]),
            step_started_s=float(state["StepStartedAt"]),
            blue_variants=tuple(state["BlueVariants"]),
            green_variants=tuple(state["GreenVariants"]),
            state=state,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"endpoint {endpoint!r} has a damaged deployment state: {exc}") from exc
