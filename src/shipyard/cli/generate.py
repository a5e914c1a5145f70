"""`shipyard generate`: write fraud-scenario events and their labels to files or stdout."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from shipyard.core.errors import ConfigError, ShipyardError
from shipyard.scenarios.fraud import (
    CATEGORICAL_DRIFT_COLUMNS,
    NUMERIC_DRIFT_COLUMNS,
    FraudScenario,
    ProgressCallback,
    write_jsonl,
    write_parquet,
)

PROGRESS_MIN_EVENTS = 1_000_000  # below this a run takes about a second: no bar needed


def parse_drift(pairs: list[str]) -> dict[str, float]:
    """Turn `COLUMN=FACTOR` strings into a drift mapping; the scenario checks the columns."""
    drift: dict[str, float] = {}
    for pair in pairs:
        column, sep, factor = pair.partition("=")
        if not sep or not column.strip():
            raise ConfigError(f"--drift expects COLUMN=FACTOR such as amount=1.5, got {pair!r}")
        try:
            drift[column.strip()] = float(factor)
        except ValueError:
            raise ConfigError(
                f"--drift factor must be a number, got {factor!r} in {pair!r}"
            ) from None
    return drift


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time for --drift-start; a time without offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--drift-start must be an ISO 8601 time such as 2026-11-01T03:00:00Z, got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@contextmanager
def _progress(n_events: int, is_shown: bool) -> Iterator[ProgressCallback | None]:
    if not is_shown:
        yield None
        return
    columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("generate", total=n_events)
        yield lambda count: progress.advance(task, count)


def _write(scenario: FraudScenario, n_events: int, out: Path | None, labels: Path | None) -> None:
    # The bar goes to stderr, and only when the data does not: stdout stays pure JSON lines.
    with _progress(n_events, out is not None and n_events >= PROGRESS_MIN_EVENTS) as on_chunk:
        if out is None:
            stdout = typer.get_binary_stream("stdout")
            write_jsonl(scenario, n_events, stdout, labels=labels, on_chunk=on_chunk)
        elif out.suffix.lower() == ".parquet":
            write_parquet(scenario, n_events, out, labels=labels, on_chunk=on_chunk)
        else:
            with out.open("wb") as stream:
                write_jsonl(scenario, n_events, stream, labels=labels, on_chunk=on_chunk)


_DRIFTABLE = ", ".join(NUMERIC_DRIFT_COLUMNS + CATEGORICAL_DRIFT_COLUMNS)


def generate_command(
    events: Annotated[
        int,
        typer.Option("--events", "-n", help="Number of events to generate.", show_default=False),
    ],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 0,
    bad_rows: Annotated[
        float,
        typer.Option(
            "--bad-rows",
            help="Share of rows (0 to 1) with exactly one corruption: null_required, "
            "negative_amount, unknown_category or malformed_timestamp.",
        ),
    ] = 0.0,
    drift: Annotated[
        list[str] | None,
        typer.Option(
            "--drift",
            metavar="COLUMN=FACTOR",
            help="Shift a column from --drift-start on; repeatable. A numeric column is "
            "multiplied by FACTOR; for a categorical one the odds of the second half of its "
            f"domain are multiplied by FACTOR. Columns: {_DRIFTABLE}.",
        ),
    ] = None,
    drift_start: Annotated[
        str | None,
        typer.Option(
            "--drift-start",
            metavar="ISO",
            help="Event time from which --drift applies, e.g. 2026-11-01T03:00:00Z "
            "(UTC if no offset). Default: every row.",
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            metavar="FILE",
            help="Also write the delayed ground truth (event_id, is_fraud, label_time): "
            "Parquet if FILE ends in .parquet, else JSON lines.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Write events here: Parquet if FILE ends in .parquet, else JSON lines. "
            "Default: JSON lines on stdout.",
        ),
    ] = None,
) -> None:
    """Generate synthetic card payments of the fraud scenario (docs/fraud-events.md)."""
    try:
        if events < 0:
            raise ConfigError(f"--events must be >= 0, got {events}")
        if not 0.0 <= bad_rows <= 1.0:
            raise ConfigError(f"--bad-rows must be between 0 and 1, got {bad_rows}")
        scenario = FraudScenario(
            seed=seed,
            bad_row_rate=bad_rows,
            drift=parse_drift(drift or []),
            drift_start=None if drift_start is None else parse_time(drift_start),
        )
        _write(scenario, events, out, labels)
    except ShipyardError as error:
        typer.echo(f"shipyard: {error}", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        if out is None and _is_broken_pipe(error):
            # The reader (e.g. `head`) has gone: stop quietly, as Unix filters do.
            _silence_stdout()
            raise typer.Exit(0) from None
        typer.echo(f"shipyard: cannot write output: {error}", err=True)
        raise typer.Exit(1) from None


def _is_broken_pipe(error: OSError) -> bool:
    # polars reports a closed pipe as a plain OSError whose only trace is the message.
    return (
        isinstance(error, BrokenPipeError)
        or error.errno == errno.EPIPE
        or ("Broken pipe" in str(error))
    )


def _silence_stdout() -> None:  # pragma: no cover - needs a real pipe whose reader quit
    # Python flushes stdout at exit; pointing it at /dev/null keeps that flush quiet too.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
