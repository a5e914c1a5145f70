"""Run a training job: check, read, record, train with checkpoints, evaluate, publish.

A job trains in segments that end at multiples of ``checkpoint_interval``; after each one the
trainer's state goes to the object store and the job record points at it. A stop (from
``request_stop`` in another process, or :class:`StopSignal` here) ends the run as soon as the
trainer allows; a kill ends it wherever it is. Either way :func:`resume_job` continues from
the latest checkpoint, and the model it ends with is bit-identical to an unbroken run's.

Nothing is recorded until the spec, its hyperparameters and its data have been checked, so a
bad spec leaves no trace. ``publish`` (given by the pipeline) stores and registers the model;
only when it returns is the job Completed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataError, ShipyardError, StateError
from shipyard.core.package import PackageContents
from shipyard.train import jobs
from shipyard.train.checkpoints import CheckpointStore
from shipyard.train.data import InputSource, Prepared, load_input, prepare
from shipyard.train.frameworks import Trainer, make_trainer
from shipyard.train.jobs import (
    COMPLETED,
    FAILED,
    STOPPED,
    STOPPING,
    JobTakenOver,
    TrainingJob,
    beat,
    check_resumable,
    claim_job,
    create_job,
    finish_job,
    get_job,
    record_checkpoint,
)
from shipyard.train.spec import TrainSpec, check_spec
from shipyard.train.trainer import Progress, evaluate, package_contents

if TYPE_CHECKING:
    from shipyard.storage import MetadataStore, ObjectStore

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedModel:
    """What a job hands to ``publish`` once its model is trained and evaluated."""

    job_id: str
    spec: TrainSpec
    contents: PackageContents
    metrics: dict[str, float]
    inputs: tuple[InputSource, ...]


Publish = Callable[[TrainedModel], dict[str, Any]]
"""Stores and registers the model; returns what the job records as its ``model`` output."""


class StopSignal:
    """A request to stop a running job (a signal handler, another thread, the job record)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def is_requested(self) -> bool:
        return self._event.is_set()


def start_job(
    meta: MetadataStore,
    store: ObjectStore,
    spec: TrainSpec,
    *,
    publish: Publish,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
    actor: str = "system",
    on_created: Callable[[TrainingJob], None] | None = None,
) -> TrainingJob:
    """Check ``spec`` and its data, record a job, run it; returns the job as it ended."""
    spec = check_spec(spec.with_threads(), for_job=True)
    trainer = make_trainer(spec)
    trainer.check()
    prepared, sources = _load(meta, store, spec)
    job = create_job(meta, spec, list(sources), actor=actor)
    if on_created is not None:
        on_created(job)
    token = claim_job(meta, job.id, actor=actor).token
    run = _Run(meta, store, job, trainer, prepared, sources, token, actor)
    return run.execute(None, publish, progress, stop or StopSignal())


def resume_job(
    meta: MetadataStore,
    store: ObjectStore,
    job_id: str,
    *,
    publish: Publish,
    progress: Progress | None = None,
    stop: StopSignal | None = None,
    actor: str = "system",
) -> TrainingJob:
    """Continue a Stopped or orphaned job from its latest checkpoint, on the same data."""
    job = get_job(meta, job_id)
    check_resumable(job)
    trainer = make_trainer(job.spec)
    trainer.check()
    prepared, sources = _load(meta, store, job.spec, lambda found: _check_same_inputs(job, found))
    checkpoints = CheckpointStore(store, job.id, job.spec.framework)
    state = None if job.checkpoint is None else checkpoints.load(job.checkpoint)
    token = claim_job(meta, job_id, actor=actor).token
    run = _Run(meta, store, get_job(meta, job_id), trainer, prepared, sources, token, actor)
    return run.execute(state, publish, progress, stop or StopSignal())


def _load(
    meta: MetadataStore,
    store: ObjectStore,
    spec: TrainSpec,
    check: Callable[[tuple[InputSource, ...]], None] | None = None,
) -> tuple[Prepared, tuple[InputSource, ...]]:
    """The job's input, checked by ``check`` before it is prepared (on Spark for its engine)."""
    if spec.engine == "spark":
        # Imported here: only a Spark job needs pyspark (and its JVM start-up).
        from shipyard.train.spark import load_on_spark

        return load_on_spark(meta, store, spec, check)
    data = load_input(meta, store, spec)
    if check is not None:
        check(data.sources)
    return prepare(data.frame, spec), data.sources


def _check_same_inputs(job: TrainingJob, sources: tuple[InputSource, ...]) -> None:
    recorded = [(s["field"], s["sha256"]) for s in job.inputs]
    now = [(s.field, s.sha256) for s in sources]
    if recorded != now:
        raise DataError(
            f"training job {job.id}'s input changed since it started (recorded "
            f"{', '.join(f'{f} {sha[:12]}…' for f, sha in recorded)}; now "
            f"{', '.join(f'{f} {sha[:12]}…' for f, sha in now)}); a resumed job must train "
            "on the same data, so start a new job instead"
        )


class _Run:
    """One process's run of a job, from its claim to the state it ends in."""

    def __init__(
        self,
        meta: MetadataStore,
        store: ObjectStore,
        job: TrainingJob,
        trainer: Trainer,
        prepared: Prepared,
        sources: tuple[InputSource, ...],
        token: str,
        actor: str,
    ) -> None:
        self.meta, self.store, self.job, self.trainer = meta, store, job, trainer
        self.spec = job.spec
        self.prepared, self.sources, self.token, self.actor = prepared, sources, token, actor
        self.checkpoints = CheckpointStore(store, job.id, self.spec.framework)
        self.last_checkpoint = job.checkpoint

    def execute(
        self, state: bytes | None, publish: Publish, progress: Progress | None, stop: StopSignal
    ) -> TrainingJob:
        heartbeat = _Heartbeat(self, stop)
        heartbeat.start()
        try:
            self.trainer.start(self.prepared.train, state)
            if self.trainer.rounds_done != self.job.resume_round:
                raise StateError(
                    f"checkpoint of {self.job.id} holds {self.trainer.rounds_done} rounds, "
                    f"its record says {self.job.resume_round}"
                )
            self._train(progress, stop)
            if self.trainer.rounds_done < self.spec.num_rounds:
                return self._stopped(stop.reason)
            return self._complete(publish)
        except JobTakenOver:
            raise
        except KeyboardInterrupt:
            self._stopped("interrupted")
            raise
        except BaseException as exc:
            self._end(FAILED, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            heartbeat.finish()

    def _train(self, progress: Progress | None, stop: StopSignal) -> None:
        total, interval = self.spec.num_rounds, self.spec.checkpoint_interval

        def on_round(done: int) -> bool:
            if progress is not None:
                progress(done, total)
            return stop.is_requested

        while self.trainer.rounds_done < total and not stop.is_requested:
            done = self.trainer.rounds_done
            boundary = min(total, (done // interval + 1) * interval) if interval else total
            self.trainer.train(boundary - done, on_round)
            if interval and self.trainer.rounds_done == boundary:
                self._checkpoint()
        done = self.trainer.rounds_done
        if interval and self.trainer.resumes_at_any_round and self.resume_round < done < total:
            # Stopped inside a segment, by a trainer whose state is exact at any round.
            self._checkpoint()

    @property
    def resume_round(self) -> int:
        return self.last_checkpoint.round if self.last_checkpoint else 0

    def _checkpoint(self) -> None:
        checkpoint = self.checkpoints.save(self.trainer.rounds_done, self.trainer.checkpoint())
        record_checkpoint(self.meta, self.job.id, self.token, checkpoint)
        self.last_checkpoint = checkpoint
        self.checkpoints.discard_all_but(checkpoint)

    def _stopped(self, reason: str) -> TrainingJob:
        resume = self.resume_round
        return self._end(
            STOPPED,
            f"{reason or 'stop requested'}; trained {self.trainer.rounds_done} of "
            f"{self.spec.num_rounds} rounds, resumes from round {resume}",
            rounds_done=resume,
        )

    def _complete(self, publish: Publish) -> TrainingJob:
        _scores, metrics = evaluate(self.trainer, self.prepared, self.spec)
        contents = package_contents(
            self.spec, self.trainer, self.prepared, metrics, job_id=self.job.id
        )
        model = publish(TrainedModel(self.job.id, self.spec, contents, metrics, self.sources))
        summary = f"AUC-PR {metrics['auc_pr']:.4f} on {self.prepared.holdout_rows:,} holdout rows"
        registered = f"; registered {model['version']}" if "version" in model else ""
        return self._end(
            COMPLETED,
            summary + registered,
            rounds_done=self.trainer.rounds_done,
            metrics=metrics,
            model=model,
        )

    def _end(self, status: str, reason: str, **outputs: Any) -> TrainingJob:
        try:
            return finish_job(
                self.meta,
                self.job.id,
                self.token,
                status,
                reason=reason,
                actor=self.actor,
                stop_reason=reason if status == STOPPED else None,
                **outputs,
            )
        except JobTakenOver:
            raise
        except ShipyardError:
            if status == COMPLETED:
                raise
            # Recording a failure failed too (e.g. the database is down): the job stays
            # InProgress and its stale heartbeat marks it orphaned, hence resumable.
            _log.exception("could not record %s as %s", self.job.id, status)
            return get_job(self.meta, self.job.id)


class _Heartbeat(threading.Thread):
    """Keeps the job's heartbeat fresh and turns a Stopping status into a local stop request."""

    def __init__(self, run: _Run, stop: StopSignal) -> None:
        super().__init__(name=f"heartbeat-{run.job.id}", daemon=True)
        self.job_run, self.stop = run, stop
        self._finished = threading.Event()

    def run(self) -> None:
        run = self.job_run
        while not self._finished.wait(jobs.HEARTBEAT_S):
            try:
                job = beat(run.meta, run.job.id, run.token, run.trainer.rounds_done)
            except JobTakenOver as exc:
                self.stop.request(str(exc))
                return
            except ShipyardError as exc:  # a busy or unreachable database: try again next beat
                _log.warning("heartbeat of %s failed: %s", run.job.id, exc)
                continue
            if job.status == STOPPING:
                self.stop.request(str(job.outputs.get("stop_reason") or "stop requested"))

    def finish(self) -> None:
        self._finished.set()
        self.join(timeout=10)
