"""Monitoring schedules: run drift and model-quality jobs on a cron schedule or on demand.

A schedule's expression is SageMaker's (see ``cron.py``). Missed times are not replayed: a
scheduler that was down runs the latest missed time once.

Nothing here needs tables of its own. A schedule is the fold of its audit events
(``entity_kind`` "monitoring_schedule": create, delete); each execution is a run (``kind``
"monitor") whose id is derived from the schedule and the scheduled time, so two schedulers can
never both run the same time, plus an "execution" event on the schedule. Executions end
Completed, CompletedWithViolations or Failed, as SageMaker's do. Results are handed to
``publish`` (e.g. ``MetricsStore.put``) so alarms can watch them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from shipyard.core.errors import InvalidRequestError, NotFoundError, ShipyardError, StateError
from shipyard.monitor.captured import is_capture, read_captured_inputs
from shipyard.monitor.cron import ScheduleExpression
from shipyard.monitor.job import JobResult, run_drift_job, run_quality_job
from shipyard.storage import MetadataStore, ObjectStore, list_events, record_event, utcnow
from shipyard.storage.catalog import code_version
from shipyard.storage.schema import events, runs

logger = logging.getLogger(__name__)

DATA_DRIFT = "DataDrift"
MODEL_QUALITY = "ModelQuality"
MONITORING_TYPES = (DATA_DRIFT, MODEL_QUALITY)
COMPLETED = "Completed"
WITH_VIOLATIONS = "CompletedWithViolations"
FAILED = "Failed"
ENTITY = "monitoring_schedule"
RUN_KIND = "monitor"
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class MetricPublisher(Protocol):
    """Where results go: ``MetricsStore.put`` has this shape."""

    def __call__(
        self, metric: str, value: float, *, endpoint: str, at_s: float | None = None
    ) -> None: ...


@dataclass(frozen=True)
class MonitoringSchedule:
    """What to check, against what, and when.

    DataDrift: ``current`` is the data to check (Parquet file, folder or glob, or
    ``capture:ENDPOINT`` for the endpoint's captured requests), ``baseline`` the reference
    dataset. ModelQuality: ``current`` holds captured predictions (``event_id``,
    ``score``), ``labels`` the ground truth, ``baseline`` a constraints.json. With
    ``window_hours`` a job reads only rows whose ``time_column`` lies in the hours before its
    scheduled time. ``endpoint`` names the metrics' endpoint (the schedule's name if None).
    """

    name: str
    monitoring_type: str
    schedule_expression: str
    current: str
    baseline: str
    labels: str | None = None
    endpoint: str | None = None
    window_hours: float | None = None
    time_column: str = "event_time"
    columns: tuple[str, ...] | None = None
    threshold: float = 0.5
    created_at: str | None = None  # set by MonitoringScheduler.create from its clock

    def check(self) -> MonitoringSchedule:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidRequestError(
                f"schedule name {self.name!r} must be 1-63 letters, digits and hyphens, "
                "starting and ending with a letter or digit"
            )
        if self.monitoring_type not in MONITORING_TYPES:
            raise InvalidRequestError(
                f"monitoring type {self.monitoring_type!r} is not one of "
                f"{', '.join(MONITORING_TYPES)}"
            )
        ScheduleExpression.parse(self.schedule_expression)
        if self.monitoring_type == MODEL_QUALITY and not self.labels:
            raise InvalidRequestError("a ModelQuality schedule needs labels (the ground truth)")
        if self.window_hours is not None and not self.window_hours > 0:
            raise InvalidRequestError(f"window_hours must be > 0, got {self.window_hours!r}")
        if not 0 <= self.threshold <= 1:
            raise InvalidRequestError(f"threshold must be in [0, 1], got {self.threshold!r}")
        return self

    @property
    def expression(self) -> ScheduleExpression:
        return ScheduleExpression.parse(self.schedule_expression)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["columns"] = None if self.columns is None else list(self.columns)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringSchedule:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("columns") is not None:
            known["columns"] = tuple(known["columns"])
        return cls(**known)


@dataclass(frozen=True)
class Execution:
    """One run of a schedule: when it was due, how it ended, and where its report is."""

    run_id: str
    schedule: str
    scheduled_time: str
    status: str
    violations: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None

    @property
    def report_uri(self) -> str | None:
        return self.outputs.get("report.html")


class MonitoringScheduler:
    """Creates and lists schedules, runs them when due or on demand, records every execution."""

    def __init__(
        self,
        meta: MetadataStore,
        store: ObjectStore,
        *,
        publish: MetricPublisher | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.meta = meta
        self.store = store
        self.publish = publish
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # definitions --------------------------------------------------------------------------

    def create(self, schedule: MonitoringSchedule, *, actor: str = "system") -> MonitoringSchedule:
        schedule.check()
        if schedule.created_at is None:
            schedule = replace(schedule, created_at=self._clock().isoformat())
        with self.meta.transaction() as connection:
            if self._definitions(connection).get(schedule.name) is not None:
                raise StateError(
                    f"monitoring schedule {schedule.name!r} already exists; delete it first"
                )
            record_event(
                connection,
                entity_kind=ENTITY,
                entity_id=schedule.name,
                action="create",
                to_state="Scheduled",
                actor=actor,
                details=schedule.to_dict(),
            )
        return schedule

    def delete(self, name: str, *, actor: str = "system") -> None:
        with self.meta.transaction() as connection:
            if self._definitions(connection).get(name) is None:
                raise NotFoundError(f"no monitoring schedule {name!r}; `list` shows them")
            record_event(
                connection,
                entity_kind=ENTITY,
                entity_id=name,
                action="delete",
                from_state="Scheduled",
                to_state="Deleted",
                actor=actor,
            )

    def get(self, name: str) -> MonitoringSchedule:
        with self.meta.reading() as connection:
            schedule = self._definitions(connection).get(name)
        if schedule is None:
            known = ", ".join(s.name for s in self.schedules()) or "none yet"
            raise NotFoundError(f"no monitoring schedule {name!r}; known: {known}")
        return schedule

    def schedules(self) -> list[MonitoringSchedule]:
        with self.meta.reading() as connection:
            found = self._definitions(connection)
        return sorted((s for s in found.values() if s is not None), key=lambda s: s.name)

    def executions(self, name: str) -> list[Execution]:
        """Executions of ``name``, newest first."""
        history = list_events(self.meta, entity_kind=ENTITY, entity_id=name)
        done = [e for e in history if e["action"] == "execution"]
        return [_execution(e["details"]) for e in reversed(done)]

    # running ------------------------------------------------------------------------------

    def run_now(self, name: str) -> Execution:
        """Run ``name`` at once (on demand), whatever its schedule says."""
        schedule = self.get(name)
        return self._execute(schedule, self._clock(), on_demand=True)

    def run_due(self) -> list[Execution]:
        """Run every schedule whose latest scheduled time has not run yet (once each)."""
        now = self._clock()
        done = []
        for schedule in self.schedules():
            since = datetime.fromisoformat(schedule.created_at or now.isoformat())
            due = schedule.expression.latest_due(now, since)
            if due is None:
                continue
            try:
                done.append(self._execute(schedule, due, on_demand=False))
            except StateError:
                continue  # another scheduler already runs this time
        return done

    def start(self, poll_s: float = 30.0) -> None:
        """Check for due schedules every ``poll_s`` seconds in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(poll_s,), name="monitor-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self, poll_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # the loop must outlive one bad tick (a database hiccup)
                logger.exception("monitoring schedules could not run")
            self._stop.wait(poll_s)

    def _execute(self, schedule: MonitoringSchedule, at: datetime, *, on_demand: bool) -> Execution:
        run_id = self._claim(schedule, at, on_demand=on_demand)
        prefix = f"reports/monitor/{schedule.name}/{run_id}"
        try:
            result = _run(schedule, self.store, prefix, at)
        except Exception as exc:  # recorded as Failed, so the run never stays InProgress
            if not isinstance(exc, ShipyardError):
                logger.exception("monitoring schedule %s failed", schedule.name)  # a bug
            reason = str(exc) if isinstance(exc, ShipyardError) else f"{type(exc).__name__}: {exc}"
            execution = Execution(
                run_id, schedule.name, at.isoformat(), FAILED, failure_reason=reason
            )
        else:
            status = WITH_VIOLATIONS if result.violations else COMPLETED
            execution = Execution(
                run_id, schedule.name, at.isoformat(), status, result.violations,
                result.outputs, result.summary,
            )  # fmt: skip
            self._publish(schedule, result)
        self._finish(execution)
        return execution

    def _claim(self, schedule: MonitoringSchedule, at: datetime, *, on_demand: bool) -> str:
        """Insert the execution's run; its id is unique per scheduled time, so a second
        scheduler trying the same time fails here (StateError) instead of running it twice."""
        seed = f"{schedule.name}@{at.isoformat()}" + (f"#{time.time_ns()}" if on_demand else "")
        run_id = f"{RUN_KIND}-{hashlib.sha256(seed.encode()).hexdigest()[:16]}"
        with self.meta.transaction() as connection:
            connection.execute(
                runs.insert().values(
                    id=run_id,
                    kind=RUN_KIND,
                    status="InProgress",
                    params={
                        "schedule": schedule.name,
                        "scheduled_time": at.isoformat(),
                        "on_demand": on_demand,
                        **schedule.to_dict(),
                    },
                    outputs={},
                    code_version=code_version(),
                    started_at=utcnow(),
                )
            )
            record_event(
                connection, entity_kind="run", entity_id=run_id, action="start",
                to_state="InProgress",
            )  # fmt: skip
        return run_id

    def _finish(self, execution: Execution) -> None:
        details = asdict(execution)
        with self.meta.transaction() as connection:
            connection.execute(
                runs.update()
                .where(runs.c.id == execution.run_id)
                .values(
                    status=execution.status,
                    outputs={"violations": execution.violations, **execution.outputs},
                    ended_at=utcnow(),
                    failure_reason=execution.failure_reason,
                )
            )
            for kind, entity, action in (
                ("run", execution.run_id, "finish"),
                (ENTITY, execution.schedule, "execution"),
            ):
                record_event(
                    connection,
                    entity_kind=kind,
                    entity_id=entity,
                    action=action,
                    from_state="InProgress",
                    to_state=execution.status,
                    reason=execution.failure_reason or "",
                    details=details,
                )

    def _publish(self, schedule: MonitoringSchedule, result: JobResult) -> None:
        if self.publish is None:
            return
        endpoint = schedule.endpoint or schedule.name
        at_s = time.time()
        for metric, value in result.metrics.items():
            try:
                self.publish(metric, value, endpoint=endpoint, at_s=at_s)
            except ShipyardError:
                logger.exception("could not publish %s of schedule %s", metric, schedule.name)

    def _definitions(self, connection: sa.Connection) -> dict[str, MonitoringSchedule | None]:
        """Every schedule name ever created -> its definition, or None once deleted."""
        query = (
            sa.select(events.c.entity_id, events.c.action, events.c.details)
            .where(events.c.entity_kind == ENTITY, events.c.action.in_(("create", "delete")))
            .order_by(events.c.id)
        )
        found: dict[str, MonitoringSchedule | None] = {}
        for name, action, details in connection.execute(query):
            found[name] = MonitoringSchedule.from_dict(details) if action == "create" else None
        return found


def _run(schedule: MonitoringSchedule, store: ObjectStore, prefix: str, at: datetime) -> JobResult:
    window = None
    if schedule.window_hours is not None:
        window = (at - timedelta(hours=schedule.window_hours), at)
    if schedule.monitoring_type == DATA_DRIFT:
        current = schedule.current
        return run_drift_job(
            store, prefix, reference=schedule.baseline,
            current=read_captured_inputs(store, current) if is_capture(current) else current,
            columns=schedule.columns, window=window, time_column=schedule.time_column,
        )  # fmt: skip
    assert schedule.labels is not None  # checked when the schedule was created
    return run_quality_job(
        store, prefix, predictions=schedule.current, labels=schedule.labels,
        constraints=schedule.baseline, threshold=schedule.threshold, window=window,
        time_column=schedule.time_column,
    )  # fmt: skip


def _execution(details: dict[str, Any]) -> Execution:
    known = {k: v for k, v in details.items() if k in Execution.__dataclass_fields__}
    return Execution(**known)
