"""`shipyard lineage` and `shipyard datasets`: what was made from what."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.tree import Tree

from shipyard.cli.console import console
from shipyard.core.config import load_settings
from shipyard.pipeline.lineage import LineageNode, lineage_of
from shipyard.pipeline.workspace import Workspace
from shipyard.storage import list_datasets


def lineage_command(
    node_id: str = typer.Argument(
        ..., metavar="ID", help="A dataset id (ds-…) or a model version (GROUP@VERSION)."
    ),
) -> None:
    """Show the graph upstream and downstream of a dataset or a model version."""
    workspace = Workspace.open(load_settings())
    try:
        lineage = lineage_of(workspace, node_id)
    finally:
        workspace.close()
    tree = Tree(f"[bold]{lineage.root.label}[/]")
    upstream = tree.add("[cyan]made from[/]")
    for node in lineage.upstream:
        _grow(upstream, node)
    if not lineage.upstream:
        upstream.add("[dim]nothing recorded[/]")
    downstream = tree.add("[cyan]used by[/]")
    for node in lineage.downstream:
        _grow(downstream, node)
    if not lineage.downstream:
        downstream.add("[dim]nothing yet[/]")
    console.print(tree)


def datasets_command(
    limit: int = typer.Option(20, "--limit", min=1, help="How many of the newest to list."),
) -> None:
    """List recorded datasets, newest first, with their lineage parents."""
    workspace = Workspace.open(load_settings())
    try:
        found = list_datasets(workspace.meta, limit=limit)
    finally:
        workspace.close()
    table = Table(title="datasets (newest first)")
    for column in ("id", "zone", "name", "rows", "parents"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for dataset in found:
        table.add_row(
            dataset.id, dataset.zone, dataset.name, f"{dataset.rows:,}", ", ".join(dataset.parents)
        )
    console.print(table)


def _grow(branch: Tree, node: LineageNode) -> None:
    child = branch.add(node.label)
    for grandchild in node.children:
        _grow(child, grandchild)
