"""`shipyard validate run`: validate a dataset against a contract and store the split and reports.

Exit codes: 0 the batch passed, 1 it failed its thresholds, 2 a usage, contract or data error.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from shipyard.cli.baseline import baseline_command
from shipyard.cli.console import console
from shipyard.core.config import load_settings
from shipyard.core.errors import ConfigError, ContractError, DataError

validate_app = typer.Typer(
    help="Validate datasets against data contracts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
validate_app.command(
    "baseline", help="Suggest a Model Monitor baseline (statistics.json, constraints.json)."
)(baseline_command)

TOP_CHECKS = 5


class Engine(StrEnum):
    polars = "polars"
    spark = "spark"


@validate_app.command("run")
def run_command(
    data: Annotated[Path, typer.Argument(help="A Parquet file, a folder of them, or JSON lines.")],
    contract: Annotated[Path, typer.Option("--contract", help="The contract YAML file.")],
    engine: Annotated[Engine, typer.Option("--engine", help="The engine that validates.")] = (
        Engine.polars
    ),
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the JSON report.")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the HTML report.")] = None,
) -> None:
    """Split DATA into curated and quarantined rows; exit 1 if the batch fails its contract."""
    from shipyard.pipeline import Workspace
    from shipyard.pipeline.validation import run_validation
    from shipyard.validate import load_contract
    from shipyard.validate.report import format_observed

    try:
        loaded = load_contract(contract)
        workspace = Workspace.open(load_settings())
        try:
            run = run_validation(
                workspace, loaded, data, engine=engine.value, report_json=report, report_html=html
            )
        finally:
            workspace.close()
    except (ContractError, DataError, ConfigError) as exc:
        print(f"shipyard: {' '.join(str(exc).split())}", file=sys.stderr)
        raise typer.Exit(2) from None
    outcome = run.outcome
    verdict = "[green]PASSED[/]" if run.passed else "[red]FAILED[/]"
    console.print(
        f"{verdict} {loaded.name}@{loaded.version} ({engine.value}, run {run.run_id}): "
        f"{outcome.rows_in:,} rows in, {outcome.rows_valid:,} valid, "
        f"{outcome.rows_quarantined:,} quarantined",
        soft_wrap=True,
    )
    top = sorted(((n, code) for code, n in outcome.check_counts.items() if n), reverse=True)
    if top:
        console.print(
            "top failing checks: " + ", ".join(f"{code} {n:,}" for n, code in top[:TOP_CHECKS]),
            soft_wrap=True,
            markup=False,
        )
    table = Table(title="dataset checks", title_justify="left")
    for column in ("check", "observed", "expected", "result"):
        table.add_column(column)
    for name, check in outcome.dataset_checks.items():
        observed = format_observed(check.observed)
        result = "[green]pass[/]" if check.passed else "[red]fail[/]"
        table.add_row(name, observed, check.expected, result)
    console.print(table)
    for reason in outcome.reasons_failed:
        console.print(f"  - {reason}", soft_wrap=True, markup=False)
    for name, url in run.outputs.items():
        console.print(f"{name}: {url}", soft_wrap=True, markup=False)
    if not run.passed:
        raise typer.Exit(1)
