"""Training job records: the ``runs`` rows of kind ``train`` and their state machine.

::

    Pending ──▶ InProgress ──▶ Completed
                   │  ▲  ╲───▶ Failed
                   ▼  │ resume
                Stopping ──▶ Stopped

Every change of state writes one ``events`` row (entity ``training_job``) with its reason, in
the same transaction. The process that runs a job records its pid, host, start time and a
heartbeat; a job left InProgress by a process that is gone (killed, machine lost) is *orphaned*
and can be resumed from its latest checkpoint. Each run of a job holds a token: a process whose
job was taken over by another stops writing to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.core.errors import NotFoundError, StateError
from shipyard.storage import code_version, list_events, new_id, record_event, utcnow
from shipyard.storage.schema import runs
from shipyard.train.checkpoints import Checkpoint
from shipyard.train.processes import ProcessInfo
from shipyard.train.spec import TrainSpec, spec_from_dict, spec_to_dict

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from shipyard.storage import MetadataStore
    from shipyard.train.data import InputSource

PENDING = "Pending"
IN_PROGRESS = "InProgress"
STOPPING = "Stopping"
STOPPED = "Stopped"
FAILED = "Failed"
COMPLETED = "Completed"
JOB_STATES = (PENDING, IN_PROGRESS, STOPPING, STOPPED, FAILED, COMPLETED)
RUN_KIND = "train"
ENTITY = "training_job"
HEARTBEAT_S = 2.0


class JobTakenOver(StateError):
    """Another process resumed this job; the one that got this error must stop writing."""


@dataclass(frozen=True)
class TrainingJob:
    """A training job as its record says, with the liveness of its process."""

    id: str
    status: str
    spec: TrainSpec
    inputs: list[dict[str, Any]]
    rounds_done: int
    checkpoint: Checkpoint | None
    process: ProcessInfo | None
    started_at: datetime
    ended_at: datetime | None
    failure_reason: str | None
    code_version: str
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.outputs.get("metrics") or {})

    @property
    def model(self) -> dict[str, Any]:
        """What the job registered (e.g. ``version``), once Completed."""
        return dict(self.outputs.get("model") or {})

    @property
    def is_running(self) -> bool:
        return self.status in (IN_PROGRESS, STOPPING) and bool(
            self.process and self.process.is_alive()
        )

    @property
    def is_orphaned(self) -> bool:
        """Left InProgress or Stopping by a process that is gone: killed, or its host lost."""
        return self.status in (IN_PROGRESS, STOPPING) and not self.is_running

    @property
    def is_resumable(self) -> bool:
        return self.status in (PENDING, STOPPED) or self.is_orphaned

    @property
    def resume_round(self) -> int:
        return self.checkpoint.round if self.checkpoint else 0

    def describe_state(self) -> str:
        """The status in words, e.g. 'InProgress (process 4242 on h1 is gone)'."""
        if self.is_orphaned and self.process is not None:
            age = time.time() - self.process.heartbeat_at
            return (
                f"{self.status} (process {self.process.pid} on {self.process.host} is gone; "
                f"last heartbeat {age:.0f} s ago)"
            )
        return self.status


def create_job(
    meta: MetadataStore, spec: TrainSpec, inputs: list[InputSource], *, actor: str
) -> TrainingJob:
    """Record a new Pending job for a checked spec and its read inputs."""
    job_id = new_id("train")
    params = {"spec": spec_to_dict(spec), "inputs": [s.to_dict() for s in inputs]}
    with meta.transaction() as connection:
        connection.execute(
            runs.insert().values(
                id=job_id,
                kind=RUN_KIND,
                status=PENDING,
                params=params,
                outputs={"rounds_done": 0},
                code_version=code_version(),
                started_at=utcnow(),
            )
        )
        _event(
            connection,
            job_id,
            "create",
            None,
            PENDING,
            f"{spec.framework} job for group {spec.output_group}",
            actor,
        )
    return get_job(meta, job_id)


def get_job(meta: MetadataStore, job_id: str) -> TrainingJob:
    with meta.reading() as connection:
        row = connection.execute(_select().where(runs.c.id == job_id)).first()
    if row is None:
        raise NotFoundError(f"no training job {job_id!r}; `shipyard train list` shows them")
    return _job(row._mapping)


def list_jobs(meta: MetadataStore, *, limit: int | None = None) -> list[TrainingJob]:
    """Training jobs, newest first."""
    query = _select().order_by(runs.c.started_at.desc(), runs.c.id)
    if limit is not None:
        query = query.limit(limit)
    with meta.reading() as connection:
        return [_job(row._mapping) for row in connection.execute(query)]


def job_events(meta: MetadataStore, job_id: str) -> list[dict[str, Any]]:
    """The job's audit events, oldest first: every change of state with its reason."""
    return list_events(meta, entity_kind=ENTITY, entity_id=job_id)


def claim_job(meta: MetadataStore, job_id: str, *, actor: str) -> ProcessInfo:
    """Make this process the job's runner: Pending, Stopped or orphaned -> InProgress."""
    process = ProcessInfo.of_this_process()
    with _locked(meta, job_id) as (connection, job):
        check_resumable(job)
        if job.status == PENDING:
            action, reason = "start", f"started by process {process.pid} on {process.host}"
        else:
            action = "resume"
            gone = " after its process was lost" if job.is_orphaned else ""
            reason = (
                f"resumed{gone} by process {process.pid} on {process.host} "
                f"from checkpoint round {job.resume_round}"
            )
        _update(connection, job, status=IN_PROGRESS, process=process.to_dict(), stop_reason=None)
        _event(connection, job_id, action, job.status, IN_PROGRESS, reason, actor)
    return process


def record_checkpoint(meta: MetadataStore, job_id: str, token: str, checkpoint: Checkpoint) -> None:
    with _owned(meta, job_id, token) as (connection, job):
        _update(connection, job, checkpoint=checkpoint.to_dict(), rounds_done=checkpoint.round)
        record_event(
            connection,
            entity_kind=ENTITY,
            entity_id=job_id,
            action="checkpoint",
            reason=f"round {checkpoint.round}",
            details=checkpoint.to_dict(),
        )


def beat(meta: MetadataStore, job_id: str, token: str, rounds_done: int) -> TrainingJob:
    """Refresh the heartbeat; returns the job (a Stopping status asks the runner to stop)."""
    with _owned(meta, job_id, token) as (connection, job):
        if job.status in (IN_PROGRESS, STOPPING):  # a beat racing the end changes nothing
            process = dict(job.outputs["process"], heartbeat_at=time.time())
            _update(connection, job, process=process, rounds_done=rounds_done)
    return job


def request_stop(meta: MetadataStore, job_id: str, *, reason: str, actor: str) -> TrainingJob:
    """Ask a running job to stop at its next checkpoint boundary; a gone one is Stopped now."""
    with _locked(meta, job_id) as (connection, job):
        if job.status in (STOPPED, COMPLETED, FAILED):
            raise StateError(f"training job {job_id} is already {job.status}; nothing to stop")
        if job.status == STOPPING and job.is_running:
            return job
        if job.is_running:
            _update(connection, job, status=STOPPING, stop_reason=reason)
            _event(connection, job_id, "stop", job.status, STOPPING, reason, actor)
        else:
            why = (
                f"{reason}; its process is gone, so it stops where its last checkpoint is "
                f"(round {job.resume_round})"
                if job.status != PENDING
                else f"{reason}; it had not started"
            )
            _update(connection, job, status=STOPPED, stop_reason=reason)
            _event(connection, job_id, "stop", job.status, STOPPED, why, actor)
    return get_job(meta, job_id)


def finish_job(
    meta: MetadataStore,
    job_id: str,
    token: str,
    status: str,
    *,
    reason: str,
    actor: str,
    **outputs: Any,
) -> TrainingJob:
    """End a run of the job: Completed, Failed or Stopped (via Stopping), with its outputs."""
    with _owned(meta, job_id, token) as (connection, job):
        current = job.status
        if status == STOPPED and current == IN_PROGRESS:
            _event(connection, job_id, "stop", current, STOPPING, reason, actor)
            current = STOPPING
        values: dict[str, Any] = {"status": status, **outputs}
        if status == FAILED:
            values["failure_reason"] = reason
        _update(connection, job, **values)
        action = {COMPLETED: "complete", FAILED: "fail", STOPPED: "stop"}[status]
        _event(connection, job_id, action, current, status, reason, actor)
    return get_job(meta, job_id)


# ----------------------------------------------------------------------------------------


def _select() -> sa.Select[Any]:
    return sa.select(runs).where(runs.c.kind == RUN_KIND)


def _job(m: Any) -> TrainingJob:
    outputs = dict(m["outputs"] or {})
    params = dict(m["params"] or {})
    return TrainingJob(
        id=m["id"],
        status=m["status"],
        spec=spec_from_dict(params.get("spec", {}), source=f"job {m['id']}"),
        inputs=list(params.get("inputs", [])),
        rounds_done=int(outputs.get("rounds_done", 0)),
        checkpoint=Checkpoint.from_dict(outputs.get("checkpoint")),
        process=ProcessInfo.from_dict(outputs.get("process")),
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        failure_reason=m["failure_reason"],
        code_version=m["code_version"],
        outputs=outputs,
    )


@contextmanager
def _locked(meta: MetadataStore, job_id: str) -> Iterator[tuple[Connection, TrainingJob]]:
    """The job's row, locked for the rest of one transaction."""
    with meta.transaction() as connection:
        row = connection.execute(_select().where(runs.c.id == job_id).with_for_update()).first()
        if row is None:
            raise NotFoundError(f"no training job {job_id!r}; `shipyard train list` shows them")
        yield connection, _job(row._mapping)


@contextmanager
def _owned(
    meta: MetadataStore, job_id: str, token: str
) -> Iterator[tuple[Connection, TrainingJob]]:
    """Like :func:`_locked`, for the process holding ``token``; else ``JobTakenOver``."""
    with _locked(meta, job_id) as (connection, job):
        holder = job.process
        if holder is None or holder.token != token:
            who = f"process {holder.pid} on {holder.host}" if holder else "nobody"
            raise JobTakenOver(f"training job {job_id} is now run by {who}; this run stops")
        yield connection, job


def _update(connection: Connection, job: TrainingJob, **changes: Any) -> None:
    """Write column changes (status, failure_reason) and output changes (everything else)."""
    columns: dict[str, Any] = {
        k: changes.pop(k) for k in ("status", "failure_reason") if k in changes
    }
    if columns.get("status") in (COMPLETED, FAILED, STOPPED):
        columns["ended_at"] = utcnow()
    elif "status" in columns:
        columns["ended_at"] = None
    outputs = {**job.outputs, **changes}
    connection.execute(runs.update().where(runs.c.id == job.id).values(outputs=outputs, **columns))


def _event(
    connection: Connection,
    job_id: str,
    action: str,
    from_state: str | None,
    to_state: str,
    reason: str,
    actor: str,
) -> None:
    record_event(
        connection,
        entity_kind=ENTITY,
        entity_id=job_id,
        action=action,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        actor=actor,
    )


def check_resumable(job: TrainingJob) -> None:
    """Refuse, saying why, to resume a job that is finished or still running."""
    if job.is_resumable:
        return
    if job.status == COMPLETED:
        version = job.model.get("version")
        made = f" and registered {version}" if version else ""
        raise StateError(f"training job {job.id} already Completed{made}; nothing to resume")
    if job.status == FAILED:
        raise StateError(
            f"training job {job.id} Failed ({job.failure_reason}); "
            "start a new one with `shipyard train run`"
        )
    where = f" in process {job.process.pid} on {job.process.host}" if job.process else ""
    raise StateError(
        f"training job {job.id} is {job.status}{where}; "
        f"stop it first with `shipyard train stop {job.id}`"
    )
