"""The `shipyard` command: thin shells over the pipeline and the layers' public APIs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from shipyard._version import __version__
from shipyard.cli.alarms import alarms_app
from shipyard.cli.console import RichNarrator, console
from shipyard.cli.endpoints import endpoints_app
from shipyard.cli.generate import generate_command
from shipyard.cli.lineage import datasets_command, lineage_command
from shipyard.cli.models import models_app
from shipyard.cli.monitor import monitor_app
from shipyard.cli.prometheus import prometheus_rules_command
from shipyard.cli.streams import ingest_app, streams_app
from shipyard.cli.train import train_app
from shipyard.cli.validate import validate_app
from shipyard.core.config import Settings, load_settings
from shipyard.core.errors import ConfigError, ShipyardError
from shipyard.storage.metadata import redact

if TYPE_CHECKING:
    from shipyard.serve import EndpointDescription

app = typer.Typer(
    help="Shipyard: run a fraud-detection model in production end to end, on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("generate", help="Generate fraud-scenario card events (JSON lines or Parquet).")(
    generate_command
)
app.command("lineage", help="Show what a dataset or model version was made from, and used by.")(
    lineage_command
)
app.command("datasets", help="List recorded datasets with their lineage parents.")(datasets_command)
app.add_typer(validate_app, name="validate", help="Validate datasets against data contracts.")
app.add_typer(train_app, name="train", help="Train models as checkpointed, resumable jobs.")
app.add_typer(streams_app, name="streams", help="Create and describe streams on a server.")
app.add_typer(ingest_app, name="ingest", help="Send events, drain to the landing zone, status.")
app.add_typer(models_app, name="models", help="Model registry: versions, approval, aliases.")
app.add_typer(monitor_app, name="monitor", help="Model Monitor: drift, quality, schedules.")
monitor_app.command("prometheus-rules")(prometheus_rules_command)
app.add_typer(alarms_app, name="alarms", help="CloudWatch-style alarms and their history.")
app.add_typer(endpoints_app, name="endpoints", help="Endpoints: create, update, roll back, ...")


def _settings(**overrides: object) -> Settings:
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def version() -> None:
    """Print Shipyard's version."""
    console.print(f"shipyard {__version__}")


@app.command()
def demo(
    events: int = typer.Option(1_000_000, "--events", min=2_000, help="Events to generate."),
    seed: int = typer.Option(7, "--seed", help="Seed of the fraud scenario (deterministic)."),
) -> None:
    """Run the whole fraud story: ingest, validate, train, register, serve, fail, roll back."""
    from shipyard.pipeline import Workspace
    from shipyard.pipeline.demo import run_demo

    settings = _settings()
    workspace = Workspace.open(settings)
    console.print(
        f"[bold]Shipyard demo[/]: {events:,} card events, seed {seed}; "
        f"objects in {settings.resolved_store_url}, metadata in "
        f"{redact(settings.resolved_database_url)}",
        soft_wrap=True,
    )
    try:
        report = run_demo(workspace, RichNarrator(), events=events, seed=seed)
    finally:
        workspace.close()
    table = Table(title="Shipyard demo summary", show_lines=False)
    table.add_column("stage", style="cyan")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for stage in report.stages:
        table.add_row(stage.name, f"{stage.seconds:.1f}", stage.summary)
    table.add_row("total", f"{report.total_seconds:.1f}", "", style="bold")
    console.print(table)
    if report.drill is not None:
        console.print(
            f"Faulty {report.faulty}: detected {report.drill.fault_to_detection_s:.1f} s and "
            f"rolled back {report.drill.fault_to_rollback_s:.1f} s after it went live; "
            f"{report.drill.traffic.lost} requests lost."
        )
    console.print(
        f"Endpoint [bold]fraud-detector[/] serves {report.good} and stays deployed in "
        f"{settings.home_path}. Start it with [bold]shipyard server[/] and call "
        "POST /endpoints/fraud-detector/invocations."
    )


@app.command()
def server(
    host: str = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port to bind (default 8080)."),
    workers: int = typer.Option(
        None, "--workers", help="Inference worker processes (default: one per core)."
    ),
) -> None:
    """Serve every InService endpoint over HTTP (SageMaker runtime contract), with alarms."""
    from shipyard.pipeline import Workspace, listen_socket, serve_forever

    settings = _settings(host=host, port=port, workers=workers)
    workspace = Workspace.open(settings)
    try:
        sock = listen_socket(settings.host, settings.port)
        bound = sock.getsockname()[1]
        console.print(
            f"Shipyard {__version__} on http://{settings.host}:{bound} "
            f"({settings.worker_count} worker{'s' if settings.worker_count > 1 else ''}) serving "
            f"{serving_summary(workspace.endpoints.list_endpoints())} "
            f"(home {settings.home_path})",
            soft_wrap=True,
        )
        serve_forever(workspace, sock)
    finally:
        workspace.close()


def serving_summary(descriptions: list[EndpointDescription]) -> str:
    """The endpoints a starting server answers for, each with its status: those in service
    and those mid-deployment or rolling back, which serve too."""
    from shipyard.serve.workers import SERVING_STATUSES  # heavy: only when a server starts

    serving = [f"{d.name} ({d.status})" for d in descriptions if d.status in SERVING_STATUSES]
    return ", ".join(serving) or "no endpoints yet"


def _fail(message: str) -> None:
    """One plain line on stderr: no wrapping, no markup, no traceback."""
    print(f"shipyard: {' '.join(message.split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors and Shipyard errors become one line and an exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="shipyard", standalone_mode=False)
    except typer.Abort:
        _fail("interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # typer's usage and parameter errors
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        context = getattr(exc, "ctx", None)
        where = context.command_path if context is not None else "shipyard"
        _fail(f"{message} (see '{where} --help')")
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except ConfigError as exc:
        _fail(str(exc))
        sys.exit(2)
    except ShipyardError as exc:
        _fail(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        _fail("interrupted")
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
