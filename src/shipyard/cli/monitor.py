"""`shipyard monitor ...`: Model Monitor jobs, one-off (`drift`) or on a schedule (`schedules`).

`shipyard monitor drift` exits 0 when the dataset did not drift, 1 when it did, 2 on a usage or
data error. Other monitor commands join ``monitor_app`` with ``@monitor_app.command(...)``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shipyard.cli.api_client import ACTOR_OPTION, URL_OPTION, call_api, default_actor
from shipyard.cli.console import console
from shipyard.core.errors import ShipyardError

if TYPE_CHECKING:
    from starlette.routing import Route

    from shipyard.pipeline import Workspace

monitor_app = typer.Typer(
    help="Model Monitor: data drift and model quality, one-off or on a schedule.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schedules_app = typer.Typer(
    help="Monitoring schedules: create, list, run now, show executions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
monitor_app.add_typer(schedules_app, name="schedules")


class MonitoringType(StrEnum):
    data_drift = "data-drift"
    model_quality = "model-quality"


def _fail(message: str, code: int = 2) -> typer.Exit:
    print(f"shipyard: {' '.join(message.split())}", file=sys.stderr)
    return typer.Exit(code)


@contextmanager
def _steps() -> Iterator[Callable[[str], None]]:
    """A spinner naming the current step (only on a terminal)."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda text: bar.update(task, description=text)


@monitor_app.command("drift")
def drift_command(
    reference: Annotated[
        Path, typer.Option("--reference", metavar="DATA", help="Reference data (Parquet).")
    ],
    current: Annotated[
        Path, typer.Option("--current", metavar="DATA", help="Current data (Parquet).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Write drift_report.json, constraint_violations.json and report.html here.",
        ),
    ] = None,  # fmt: skip
    columns: Annotated[
        str | None, typer.Option("--columns", help="Comma-separated features (default: all).")
    ] = None,
    drift_share: Annotated[
        float, typer.Option("--drift-share", help="Share of drifted features that is drift.")
    ] = 0.5,
) -> None:
    """Test every feature of CURRENT against REFERENCE; exit 1 if the dataset drifted."""
    from shipyard.monitor import DriftDetector, write_drift_outputs
    from shipyard.storage import ObjectStore

    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    started = time.perf_counter()
    try:
        with _steps() as step:
            step(f"reading the reference {reference}")
            detector = DriftDetector(names, drift_share=drift_share).fit(reference)
            step(f"testing {current} against it")
            report = detector.score(current)
            urls = {}
            if out is not None:
                step(f"writing reports to {out}")
                urls = write_drift_outputs(report, ObjectStore(f"file://{out.resolve()}"), "")
    except ShipyardError as exc:
        raise _fail(str(exc)) from None
    table = Table(title="data drift per feature", title_justify="left")
    for heading in ("feature", "type", "method", "statistic", "threshold", "result"):
        table.add_column(
            heading, justify="right" if heading in ("statistic", "threshold") else "left"
        )
    for column in report.columns:
        result = "[red]drift[/]" if column.drift_detected else "[green]ok[/]"
        table.add_row(
            column.name, column.column_type, column.method,
            f"{column.statistic:.4g}", f"{column.threshold:g}", result,
        )  # fmt: skip
    console.print(table)
    for name, reason in report.skipped:
        console.print(f"not tested: {name} ({reason})", markup=False, soft_wrap=True)
    verdict = "[red]DATASET DRIFT[/]" if report.dataset_drift else "[green]no dataset drift[/]"
    console.print(
        f"{verdict}: {len(report.drifted)} of {len(report.columns)} features drifted "
        f"({report.share_of_drifted_columns:.0%}, threshold {report.drift_share:.0%}); "
        f"{report.reference_rows:,} reference vs {report.current_rows:,} current rows "
        f"in {time.perf_counter() - started:.2f} s",
        soft_wrap=True,
    )
    for name, url in urls.items():
        console.print(f"{name}: {url}", markup=False, soft_wrap=True)
    if report.dataset_drift:
        raise typer.Exit(1)


def _routes(workspace: Workspace) -> list[Route]:
    from shipyard.monitor import create_schedule_routes

    return create_schedule_routes(workspace.monitoring)


def _call(url: str | None, method: str, path: str = "", **kwargs: Any) -> Any:
    """Through the server when one answers (so its alarms see the results), else in-process."""
    try:
        return call_api(url, method, "/api/v1/monitoring-schedules" + path, _routes, **kwargs)
    except ShipyardError as exc:
        raise _fail(str(exc)) from None


@schedules_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="Schedule name (letters, digits, hyphens).")],
    kind: Annotated[MonitoringType, typer.Option("--type", help="What the job checks.")],
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule", help="cron(0 0/6 ? * * *), cron(0 H ? * * *), rate(N hours) or NOW."
        ),
    ],
    current: Annotated[
        str, typer.Option("--current", help="Data to check (data-drift) or captured predictions.")
    ],
    baseline: Annotated[
        str, typer.Option("--baseline", help="Reference data (data-drift) or constraints.json.")
    ],
    labels: Annotated[
        str | None, typer.Option("--labels", help="Ground truth (model-quality).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Endpoint whose metrics get the results.")
    ] = None,
    window_hours: Annotated[
        float | None, typer.Option("--window-hours", help="Check only the last N hours of rows.")
    ] = None,
    time_column: Annotated[
        str, typer.Option("--time-column", help="Column that places a row in the window.")
    ] = "event_time",
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Create a monitoring schedule (``--current capture:ENDPOINT`` checks captured requests)."""
    from shipyard.monitor import DATA_DRIFT, MODEL_QUALITY

    body = {
        "monitoring_type": DATA_DRIFT if kind == MonitoringType.data_drift else MODEL_QUALITY,
        "schedule_expression": schedule,
        "current": current if current.startswith("capture:") else _absolute(current),
        "baseline": _absolute(baseline),
        "labels": None if labels is None else _absolute(labels),
        "endpoint": endpoint,
        "window_hours": window_hours,
        "time_column": time_column,
        "actor": default_actor(actor),
    }
    created = _call(url, "PUT", f"/{name}", body=body)
    console.print(
        f"created {created['monitoring_type']} schedule [bold]{name}[/] "
        f"({created['schedule_expression']})"
    )


@schedules_app.command("list")
def list_command(url: str | None = URL_OPTION) -> None:
    """List monitoring schedules with their latest execution."""
    found = _call(url, "GET")["MonitoringSchedules"]
    table = Table(title="monitoring schedules", title_justify="left")
    for heading in ("name", "type", "schedule", "last run", "status", "violations"):
        table.add_column(heading)
    for spec in found:
        last = spec["last_execution"] or {}
        table.add_row(
            spec["name"], spec["monitoring_type"], spec["schedule_expression"],
            last.get("scheduled_time", "-"), last.get("status", "-"),
            str(last.get("violations", "-")),
        )  # fmt: skip
    console.print(table)


@schedules_app.command("run-now")
def run_now_command(
    name: Annotated[str, typer.Argument(help="The schedule to run.")],
    url: str | None = URL_OPTION,
) -> None:
    """Run a schedule's job now; exit 1 if it found violations or failed.

    Through a running server, its metrics reach the server's alarms.
    """
    with _steps() as step:
        step(f"running {name}")
        execution = _call(url, "POST", f"/{name}/run")
    _print_execution(execution)
    if execution["status"] != "Completed":
        raise typer.Exit(1)


@schedules_app.command("executions")
def executions_command(
    name: Annotated[str, typer.Argument(help="The schedule.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N executions.")] = 10,
    url: str | None = URL_OPTION,
) -> None:
    """Show a schedule's executions, newest first, with their reports."""
    executions = _call(url, "GET", f"/{name}")["executions"][:limit]
    table = Table(title=f"executions of {name}", title_justify="left")
    for heading in ("scheduled", "status", "violations", "run"):
        table.add_column(heading)
    for e in executions:
        table.add_row(e["scheduled_time"], e["status"], str(e["violations"]), e["run_id"])
    console.print(table)
    for e in executions:
        where = e["report_uri"] or f"failed: {e['failure_reason']}"
        console.print(f"{e['run_id']}: {where}", markup=False, soft_wrap=True)


def _print_execution(execution: dict[str, Any]) -> None:
    status = execution["status"]
    colour = {"Completed": "green", "CompletedWithViolations": "red"}.get(status, "red")
    console.print(
        f"[{colour}]{status}[/] {execution['schedule']} (run {execution['run_id']}): "
        f"{execution['violations']} violation(s)",
        soft_wrap=True,
    )
    for key, value in execution["summary"].items():
        console.print(f"  {key}: {value}", markup=False, soft_wrap=True)
    if execution["failure_reason"]:
        console.print(f"  failure: {execution['failure_reason']}", markup=False, soft_wrap=True)
    for name, url in execution["outputs"].items():
        console.print(f"{name}: {url}", markup=False, soft_wrap=True)


def _absolute(path: str) -> str:
    """A server in another folder must find the file: relative paths are made absolute here."""
    return path if "://" in path else str(Path(path).expanduser().resolve())


# The short names issue 7 and the README use, beside the `schedules` group's: the same commands.
monitor_app.command("schedule", help="Create a monitoring schedule (= schedules create).")(
    create_command
)
monitor_app.command("run", help="Run a schedule's job now (= schedules run-now).")(run_now_command)
monitor_app.command(
    "reports", help="A schedule's executions and reports (= schedules executions)."
)(executions_command)
