"""Builds the concrete objects behind each seam from settings, and wires them together."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from shipyard.core.config import Settings
from shipyard.ingest import StreamHub, stream_store
from shipyard.monitor import (
    AlarmActions,
    AlarmManager,
    AlarmSpec,
    DeploymentGuardrail,
    MetricsStore,
    MonitoringScheduler,
    RollbackController,
    RollbackOutcome,
    Transition,
)
from shipyard.pipeline.monitor_jobs import open_monitoring
from shipyard.registry import ModelRegistry
from shipyard.serve import CapturePolicy, EndpointService
from shipyard.storage import MetadataStore, ObjectStore
from shipyard.validate import packaged_contract

ROLLBACK_ACTION = "rollback"


def error_rate_alarm(endpoint: str, *, period_s: int = 1) -> AlarmSpec:
    """The default guard of every endpoint: more than 5 % model errors in 2 of 3 periods."""
    return AlarmSpec(
        name=f"{endpoint}-model-error-rate",
        metric="Invocation5XXErrors",
        endpoint=endpoint,
        statistic="Average",
        threshold=0.05,
        comparison="GreaterThanThreshold",
        period_s=period_s,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        treat_missing_data="notBreaching",
        actions=(ROLLBACK_ACTION,),
    )


def capture_policy(settings: Settings) -> CapturePolicy:
    """Data capture hashes the fraud contract's sensitive fields with this home's own salt."""
    sensitive = frozenset(c.name for c in packaged_contract("fraud").columns if c.sensitive)
    salt_file = settings.home_path / "capture.salt"
    if not salt_file.exists():
        salt_file.write_bytes(secrets.token_bytes(32))
        salt_file.chmod(0o600)
    return CapturePolicy(sensitive_fields=sensitive, salt=salt_file.read_bytes())


@dataclass
class Workspace:
    """Everything one Shipyard home holds, opened with its configured engines."""

    settings: Settings
    meta: MetadataStore
    store: ObjectStore
    registry: ModelRegistry
    metrics: MetricsStore
    endpoints: EndpointService
    alarms: AlarmManager
    rollbacks: RollbackController
    streams: StreamHub
    rollback_log: list[RollbackOutcome] = field(default_factory=list)
    actions: AlarmActions = field(init=False)  # what alarm transitions do (rollback, ...)
    guardrail: DeploymentGuardrail = field(init=False)  # drives blue/green deployments
    monitoring: MonitoringScheduler = field(init=False)  # Model Monitor schedules

    @classmethod
    def open(cls, settings: Settings) -> Workspace:
        settings.ensure_home()
        meta = MetadataStore(settings.resolved_database_url)
        store = ObjectStore(settings.resolved_store_url)
        registry = ModelRegistry(meta)
        metrics = MetricsStore()
        endpoints = EndpointService(
            meta, store, registry, metrics, capture_policy=capture_policy(settings)
        )
        rollbacks = RollbackController(registry, endpoints, meta, endpoints.deployments)
        alarms = AlarmManager(metrics, meta)
        streams = StreamHub(stream_store(settings))
        workspace = cls(
            settings, meta, store, registry, metrics, endpoints, alarms, rollbacks, streams,
            rollback_log=rollbacks.outcomes,
        )  # fmt: skip
        workspace.actions = AlarmActions(rollbacks, metrics, endpoints, meta)
        workspace.guardrail = DeploymentGuardrail(
            endpoints.deployments, alarms, metrics, rollbacks, meta
        )
        alarms.on_transition = workspace.on_alarm_transition
        workspace.monitoring = open_monitoring(workspace)
        alarms.load()
        return workspace

    def on_alarm_transition(self, spec: AlarmSpec, transition: Transition) -> None:
        """An alarm's actions run, and the guardrail looks at once: a deployment may be
        watching that alarm without the rollback action."""
        try:
            self.actions.on_transition(spec, transition)
        finally:  # after: a rollback action that already ran leaves the guardrail nothing to do
            self.guardrail.wake()

    def guard_endpoints(self, period_s: int = 1) -> list[str]:
        """Give every endpoint in service its default error-rate alarm (with rollback), unless
        an alarm of that name was defined (through the API, CLI or a file)."""
        names = self.endpoints.serving
        for name in names:
            self.alarms.put_default(error_rate_alarm(name, period_s=period_s))
        return names

    def close(self) -> None:
        self.guardrail.stop()
        self.alarms.stop()
        self.monitoring.stop()
        self.actions.close()
        self.endpoints.close()
        self.streams.close()
        self.meta.dispose()
