"""Builds the concrete objects behind each seam from settings, and wires them together."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from shipyard.core.config import Settings
from shipyard.core.types import ModelRef
from shipyard.ingest import StreamHub, stream_store
from shipyard.monitor import (
    ALARM,
    AlarmManager,
    AlarmSpec,
    MetricsStore,
    RollbackController,
    RollbackOutcome,
    Transition,
)
from shipyard.registry import ModelRegistry
from shipyard.serve import EndpointService
from shipyard.storage import MetadataStore, ObjectStore

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
    _log_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, settings: Settings) -> Workspace:
        settings.ensure_home()
        meta = MetadataStore(settings.resolved_database_url)
        store = ObjectStore(settings.resolved_store_url)
        registry = ModelRegistry(meta)
        metrics = MetricsStore()
        endpoints = EndpointService(meta, store, registry, metrics)
        rollbacks = RollbackController(registry, endpoints)
        alarms = AlarmManager(metrics, meta)
        streams = StreamHub(stream_store(settings))
        workspace = cls(
            settings, meta, store, registry, metrics, endpoints, alarms, rollbacks, streams
        )
        alarms.on_transition = workspace._act_on_alarm
        return workspace

    def guard_endpoints(self, period_s: int = 1) -> list[str]:
        """Give every endpoint in service its default error-rate alarm (with rollback)."""
        names = self.endpoints.serving
        for name in names:
            self.alarms.put(error_rate_alarm(name, period_s=period_s))
        return names

    def close(self) -> None:
        self.alarms.stop()
        self.streams.close()
        self.meta.dispose()

    def _suspect(self, spec: AlarmSpec, transition: Transition) -> ModelRef:
        """The version behind the breaching datapoints; the newest serving one if unknown.

        Metrics are per variant, and a variant keeps its name across versions, so the
        version must come from the errors themselves: otherwise an alarm raised by a bad
        version could roll back the good version deployed after it.
        """
        end = (int(transition.at_s) // spec.period_s) * spec.period_s
        start = end - spec.evaluation_periods * spec.period_s
        culprits = self.metrics.error_versions(spec.endpoint, start, end)
        if culprits:
            return ModelRef.parse(max(culprits, key=lambda version: culprits[version]))
        serving = self.endpoints.serving_versions(spec.endpoint)
        return max(serving.values(), key=lambda ref: ref.version)

    def _act_on_alarm(self, spec: AlarmSpec, transition: Transition) -> None:
        if transition.to_state != ALARM or ROLLBACK_ACTION not in spec.actions:
            return
        outcome = self.rollbacks.rollback(
            spec.endpoint,
            reason=f"alarm {spec.name}: {transition.reason}",
            actor=f"rollback-controller (alarm {spec.name})",
            suspect=self._suspect(spec, transition),
        )
        with self._log_lock:
            self.rollback_log.append(outcome)
