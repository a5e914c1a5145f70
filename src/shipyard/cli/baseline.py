"""`shipyard validate baseline DATA --out DIR [--sensitive COLUMN ...] [--contract FILE]`:
SageMaker-style statistics and constraints; sensitive columns get counts only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.table import Table

from shipyard.cli.console import console
from shipyard.core.errors import DataError, NotFoundError, ShipyardError
from shipyard.validate import Baseline, infer_baseline, load_contract, write_baseline

_PARQUET_MAGIC = b"PAR1"
_TYPE_ORDER = ("Integral", "Fractional", "String", "Unknown")


def baseline_command(
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA",
            help="A Parquet file, a folder of Parquet files, or a JSON lines file.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Folder to write statistics.json and constraints.json into (created if needed).",
            show_default=False,
        ),
    ],
    sensitive: Annotated[
        list[str] | None,
        typer.Option(
            "--sensitive",
            metavar="COLUMN",
            help="A column whose values must not appear in the baseline (counts only); repeatable.",
            show_default=False,
        ),
    ] = None,
    contract: Annotated[
        Path | None,
        typer.Option(
            "--contract",
            metavar="FILE",
            help="A contract whose columns marked sensitive: true are treated as --sensitive.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Suggest a Model Monitor baseline (statistics.json, constraints.json) from sample data."""
    try:
        frame = read_data(data)
        hidden = set(sensitive or ())
        if contract is not None:
            # A contract may declare optional columns this sample lacks; those hold no values.
            marked = (spec.name for spec in load_contract(contract).columns if spec.sensitive)
            hidden.update(name for name in marked if name in frame.columns)
        baseline = infer_baseline(frame, sensitive=hidden)
        written = write_baseline(baseline, out)
    except ShipyardError as error:
        typer.echo(f"shipyard: {' '.join(str(error).split())}", err=True)
        raise typer.Exit(2) from None
    _print_summary(baseline, written)


def read_data(path: Path) -> pl.DataFrame:
    """Load DATA: Parquet (by its magic bytes, whatever the suffix), a Parquet folder, or JSONL."""
    if path.is_dir():
        # Like validation: skip "_"/"." parts (the drain's _undecodable/, temporary files).
        files = sorted(
            p
            for p in path.rglob("*.parquet")
            if not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
        )
        if not files:
            raise DataError(f"{path}: folder holds no .parquet files")
        source = pl.scan_parquet(files)
    elif path.is_file():
        with path.open("rb") as stream:
            is_parquet = stream.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC
        source = pl.scan_parquet(path) if is_parquet else pl.scan_ndjson(path)
    else:
        raise NotFoundError(
            f"no data at {path}; give a Parquet file, a folder of Parquet files "
            "or a JSON lines file"
        )
    try:
        return source.collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read it as Parquet or JSON lines: {reason}") from None


def _print_summary(baseline: Baseline, written: tuple[Path, ...]) -> None:
    types = list(baseline.feature_types.values())
    type_counts = {t: types.count(t) for t in _TYPE_ORDER if t in types}
    console.print(
        f"Baseline of [bold]{baseline.item_count:,}[/] rows and [bold]{len(types)}[/] columns: "
        + ", ".join(f"{n} {t}" for t, n in type_counts.items()),
        soft_wrap=True,
    )
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("column", style="cyan")
    table.add_column("type")
    table.add_column("complete", justify="right")
    table.add_column("suggested constraints")
    n_suggested = 0
    for feature in baseline.constraints["features"]:
        suggested = _suggestions(feature)
        n_suggested += len(suggested)
        table.add_row(
            feature["name"],
            feature["inferred_type"],
            f"{feature['completeness']:.1%}",
            ", ".join(suggested) or "-",
        )
    console.print(table)
    console.print(f"{n_suggested} constraints suggested.")
    console.print(f"Wrote {', '.join(str(path) for path in written)}", soft_wrap=True)


def _suggestions(feature: dict[str, Any]) -> list[str]:
    """The constraints a contract built from ``feature`` enforces, in words."""
    suggested = []
    if feature["completeness"] == 1.0:
        suggested.append("required")
    if feature.get("num_constraints", {}).get("is_non_negative"):
        suggested.append(">= 0")
    domain = feature.get("string_constraints", {}).get("domains")
    if domain:
        suggested.append(f"{len(domain)} allowed value{'s' if len(domain) > 1 else ''}")
    return suggested
