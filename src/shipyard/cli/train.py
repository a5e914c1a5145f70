"""`shipyard train`: run, resume, stop, list and describe training jobs.

Exit codes: 0 the job Completed (or the command did what it was asked); 1 the job Failed or
ended Stopped, or the job is in a state that does not allow the command; 2 a bad spec, input
or job id. Errors are one line on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from shipyard.cli.console import console
from shipyard.core.config import load_settings
from shipyard.core.errors import (
    ConfigError,
    DataError,
    InvalidRequestError,
    NotFoundError,
    ShipyardError,
)
from shipyard.train import (
    COMPLETED,
    FAILED,
    STOPPED,
    StopSignal,
    TrainingJob,
    TrainSpec,
    check_spec,
    get_job,
    job_events,
    list_jobs,
    load_spec,
    spec_to_dict,
)
from shipyard.train.tune import TrialRecord, TuningStudy

train_app = typer.Typer(
    help="Train models as jobs: checkpointed, resumable after a kill, registered on completion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_BAD_INPUT = (ConfigError, DataError, NotFoundError, InvalidRequestError)
_STATUS_STYLE = {COMPLETED: "green", FAILED: "red", STOPPED: "yellow"}


_ENGINE_HELP = "Override the spec's engine: local, or spark (XGBoost across Spark tasks)."


@train_app.command("run")
def run_command(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The training job spec (YAML).")],
    engine: Annotated[str | None, typer.Option("--engine", help=_ENGINE_HELP)] = None,
) -> None:
    """Start a training job; it registers its model (PendingManualApproval) when it completes."""
    from shipyard.pipeline.training import run_training

    started: list[TrainingJob] = []

    def announce(job: TrainingJob) -> None:
        started.append(job)
        _announce(job)

    with _one_line_errors(started):
        loaded = _with_engine(load_spec(spec), engine)
        with _workspace() as workspace, _stop_on_signals() as stop, _bar() as progress:
            job = run_training(
                workspace, loaded, progress=progress, stop=stop, actor=_actor(), on_created=announce
            )
    _conclude(job)


@train_app.command("resume")
def resume_command(
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="A Stopped or killed job.")],
) -> None:
    """Continue a Stopped job, or one whose process was killed, from its latest checkpoint."""
    from shipyard.pipeline.training import resume_training

    with _one_line_errors([]):
        with _workspace() as workspace, _stop_on_signals() as stop, _bar() as progress:
            before = get_job(workspace.meta, job_id)
            console.print(
                f"resuming {job_id} ({before.describe_state()}) from round {before.resume_round} "
                f"of {before.spec.num_rounds}",
                soft_wrap=True,
                markup=False,
            )
            job = resume_training(workspace, job_id, progress=progress, stop=stop, actor=_actor())
    _conclude(job)


@train_app.command("stop")
def stop_command(
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="A running job.")],
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for it to end Stopped.")
    ] = 120.0,
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the job's history.")] = (
        "stop requested"
    ),
) -> None:
    """Stop a running job cleanly: it checkpoints, ends Stopped, and can be resumed."""
    from shipyard.pipeline.training import stop_training

    with _one_line_errors([]), _workspace() as workspace:
        job = stop_training(workspace, job_id, reason=reason, actor=_actor(), wait_s=wait)
    if job.status == STOPPED:
        console.print(
            f"{job.id} Stopped; resume it from round {job.resume_round} with "
            f"`shipyard train resume {job.id}`",
            soft_wrap=True,
            markup=False,
        )
    else:
        console.print(
            f"stop requested; {job.id} is still {job.describe_state()} (a scikit-learn fit "
            "stops only at its next checkpoint)",
            soft_wrap=True,
            markup=False,
        )


@train_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest N jobs.")] = 50,
) -> None:
    """List training jobs, newest first."""
    with _one_line_errors([]), _workspace() as workspace:
        jobs = list_jobs(workspace.meta, limit=limit)
    if not jobs:
        console.print("no training jobs yet; start one with `shipyard train run SPEC`")
        return
    table = Table(title="training jobs", title_justify="left")
    for column in ("job", "status", "framework", "rounds", "checkpoint", "model", "started"):
        table.add_column(column)
    for job in jobs:
        status = job.status + (" (process gone)" if job.is_orphaned else "")
        table.add_row(
            job.id,
            f"[{_STATUS_STYLE.get(job.status, 'cyan')}]{status}[/]",
            job.spec.framework,
            f"{job.rounds_done}/{job.spec.num_rounds}",
            str(job.resume_round) if job.checkpoint else "-",
            job.model.get("version", "-"),
            f"{job.started_at:%Y-%m-%d %H:%M:%S}",
        )
    console.print(table)


@train_app.command("describe")
def describe_command(
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="A training job id.")],
) -> None:
    """Show a job: state, inputs, progress, checkpoint, metrics, model and history."""
    with _one_line_errors([]), _workspace() as workspace:
        job = get_job(workspace.meta, job_id)
        history = job_events(workspace.meta, job_id)
    spec = job.spec
    rows: list[tuple[str, str]] = [
        ("job", job.id),
        ("status", job.describe_state()),
        ("framework", f"{spec.framework}, seed {spec.seed}, {spec.threads} threads"),
        ("output group", spec.output_group),
        ("rounds", f"{job.rounds_done} of {spec.num_rounds}"),
        ("checkpoints", _checkpoint_text(job)),
    ]
    rows += [
        (f"input {i['field']}", f"{i['ref']} (sha256 {i['sha256'][:12]}…)") for i in job.inputs
    ]
    if job.process is not None and (job.is_running or job.is_orphaned):
        age = time.time() - job.process.heartbeat_at
        rows.append(
            ("process", f"{job.process.pid} on {job.process.host}, heartbeat {age:.0f}s ago")
        )
    rows.append(("started", f"{job.started_at:%Y-%m-%d %H:%M:%S %Z}"))
    if job.ended_at is not None:
        rows.append(("ended", f"{job.ended_at:%Y-%m-%d %H:%M:%S %Z}"))
    if job.failure_reason:
        rows.append(("failure", job.failure_reason))
    if job.model:
        rows.append(("model", f"{job.model['version']} ({job.model.get('approval_status')})"))
    rows += [(name, _metric(name, value)) for name, value in job.metrics.items()]
    rows.append(("code version", job.code_version))
    details = Table(show_header=False, box=None)
    for name, value in rows:
        details.add_row(f"[cyan]{name}[/]", value)
    console.print(details)
    events = Table(title="history", title_justify="left")
    for column in ("at", "action", "change", "reason", "actor"):
        events.add_column(column)
    for event in history:
        change = f"{event['from_state'] or ''} -> {event['to_state']}" if event["to_state"] else ""
        events.add_row(
            f"{event['at']:%H:%M:%S}", event["action"], change, event["reason"], event["actor"]
        )
    console.print(events)


@train_app.command("tune")
def tune_command(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The training job spec (YAML).")],
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trial budget.")] = 20,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="Stop starting trials after S s.")
    ] = None,
    metric: Annotated[str, typer.Option("--metric", help="auc_pr or auc_roc.")] = "auc_pr",
    report_every: Annotated[
        int | None, typer.Option("--report-every", min=1, help="Rounds between prune checks.")
    ] = None,
    write_best: Annotated[
        Path | None, typer.Option("--write-best", help="Write the best trial's spec here.")
    ] = None,
    train_best: Annotated[
        bool, typer.Option("--train-best", help="Then run a job with the best trial's spec.")
    ] = False,
    engine: Annotated[str | None, typer.Option("--engine", help=_ENGINE_HELP)] = None,
) -> None:
    """Tune hyperparameters with Optuna (TPE, median pruning); every trial is recorded."""
    from shipyard.pipeline.training import run_training
    from shipyard.train.tune import tune

    def show(trial: TrialRecord) -> None:
        console.print(
            f"trial {trial.number}: {trial.state} after {trial.rounds} rounds: {trial.reason}",
            soft_wrap=True,
            markup=False,
        )

    with _one_line_errors([]):
        loaded = _with_engine(load_spec(spec), engine)
        with _workspace() as workspace:
            study = tune(
                workspace.meta, workspace.store, loaded, trials=trials, timeout_s=timeout,
                metric=metric, report_every=report_every, actor=_actor(), on_trial=show,
            )  # fmt: skip
            _print_trials(study)
            best = study.best_spec()
            if write_best is not None:
                data = spec_to_dict(best)
                write_best.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
                console.print(f"wrote the best trial's spec to {write_best}", markup=False)
            if not train_best:
                return
            with _stop_on_signals() as stop, _bar() as progress:
                job = run_training(workspace, best, progress=progress, stop=stop, actor=_actor())
    _conclude(job)


@train_app.command("trials")
def trials_command(
    study_id: Annotated[str, typer.Argument(metavar="STUDY", help="A tuning study id.")],
) -> None:
    """List a tuning study's trials: hyperparameters, metric, state (Complete/Pruned/Failed)."""
    from shipyard.train.tune import get_study

    with _one_line_errors([]), _workspace() as workspace:
        study = get_study(workspace.meta, study_id)
    _print_trials(study)


def _print_trials(study: TuningStudy) -> None:
    table = Table(title=f"{study.id}: {study.status}, {study.metric}", title_justify="left")
    for column in ("trial", "state", study.metric, "rounds", "hyperparameters"):
        table.add_column(column, overflow="fold")
    for trial in study.trials:
        best = " *" if trial.number == study.best_number else ""
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        params = ", ".join(f"{k}={_param(v)}" for k, v in trial.hyperparameters.items())
        style = {"Complete": "green", "Pruned": "yellow", "Failed": "red"}.get(trial.state, "cyan")
        table.add_row(
            f"{trial.number}{best}", f"[{style}]{trial.state}[/]", value, str(trial.rounds),
            escape(params),
        )  # fmt: skip
    console.print(table)
    if study.best_number is not None and study.best_value is not None:
        console.print(
            f"best: trial {study.best_number}, {study.metric} {study.best_value:.4f}",
            markup=False,
        )


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_engine(spec: TrainSpec, engine: str | None) -> TrainSpec:
    if engine is None:
        return spec
    return check_spec(dataclasses.replace(spec, engine=engine), source="--engine")


def _checkpoint_text(job: TrainingJob) -> str:
    every = job.spec.checkpoint_interval
    if not every:
        return "off (a stopped or killed job restarts from round 0)"
    latest = f"latest at round {job.checkpoint.round}" if job.checkpoint else "none yet"
    return f"every {every} rounds; {latest}"


def _announce(job: TrainingJob) -> None:
    spec = job.spec
    every = (
        f"checkpoint every {spec.checkpoint_interval}"
        if spec.checkpoint_interval
        else "no checkpoints"
    )
    console.print(
        f"started {job.id}: {spec.framework}, {spec.num_rounds} rounds, {every}, "
        f"group {spec.output_group}; stop it with `shipyard train stop {job.id}`",
        soft_wrap=True,
        markup=False,
    )


def _conclude(job: TrainingJob) -> None:
    """Print how the job ended; exit 1 unless it Completed."""
    if job.status == COMPLETED:
        console.print(
            f"[green]Completed[/] {job.id}: registered {job.model.get('version')} "
            f"({job.model.get('approval_status')})",
            soft_wrap=True,
        )
        metrics = Table(title="holdout metrics", title_justify="left")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for name, value in job.metrics.items():
            metrics.add_row(name, _metric(name, value))
        console.print(metrics)
        return
    if job.status == STOPPED:
        _fail(
            f"{job.id} Stopped ({job.outputs.get('stop_reason')}); resume it with "
            f"`shipyard train resume {job.id}`"
        )
    else:
        _fail(f"{job.id} ended {job.describe_state()}: {job.failure_reason or ''}")
    raise typer.Exit(1)


def _metric(name: str, value: float) -> str:
    return f"{value:,.0f}" if name == "holdout_rows" else f"{value:.4f}"


def _fail(message: str) -> None:
    print(f"shipyard: {' '.join(message.split())}", file=sys.stderr)


@contextlib.contextmanager
def _one_line_errors(started: list[TrainingJob]) -> Iterator[None]:
    """Bad input exits 2, other Shipyard errors and failed jobs exit 1, in one line each."""
    try:
        yield
    except _BAD_INPUT as exc:
        _fail(str(exc))
        raise typer.Exit(2) from None
    except ShipyardError as exc:
        _fail(str(exc))
        raise typer.Exit(1) from None
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # the framework itself failed mid-training: the job is Failed
        job = f"training job {started[0].id}" if started else "training"
        _fail(f"{job} failed: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


@contextlib.contextmanager
def _workspace() -> Iterator[Any]:
    from shipyard.pipeline import Workspace

    workspace = Workspace.open(load_settings())
    try:
        yield workspace
    finally:
        workspace.close()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[StopSignal]:
    """SIGTERM (a spot reclaim notice) or Ctrl-C stops the job cleanly; a second Ctrl-C aborts."""
    stop = StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        stop.request(f"{name} received")
        print(f"shipyard: {name}: stopping; the job resumes from its checkpoint", file=sys.stderr)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _bar() -> Iterator[Callable[[int, int], None]]:
    """Boosting rounds as a progress bar on stderr (only on a terminal)."""
    err = Console(stderr=True)
    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("train", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
