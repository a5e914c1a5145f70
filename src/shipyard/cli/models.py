"""`shipyard models …`: the model registry, through its HTTP API.

With a `shipyard server` answering (``--url``, or the configured host and port), the commands
go to it, so a deployment triggered by an approval happens in the process that serves. With
none, they run the same API in-process on the home's database: a deployment then takes
effect at the next `shipyard server` start.

Exit codes: 0 done, 1 refused (unknown group or version, a change the state does not allow),
2 a usage error, a bad setting, or a server named with ``--url`` that does not answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.api_client import ACTOR_OPTION, URL_OPTION, call_api, default_actor
from shipyard.cli.console import console
from shipyard.core.names import check_name

if TYPE_CHECKING:
    from starlette.routing import Route

    from shipyard.pipeline import Workspace

models_app = typer.Typer(
    help="The model registry: list, show, approve, reject, promote, history.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

REASON_OPTION = typer.Option("", "--reason", help="Why, for the audit log.")
DEPLOY_OPTION = typer.Option(
    None, "--deploy", metavar="ENDPOINT", help="Also switch ENDPOINT to this version."
)
GROUP_ARGUMENT = typer.Argument(..., help="Model package group, e.g. fraud-detector.")
VERSION_ARGUMENT = typer.Argument(..., min=1, help="Version number.")


@models_app.command("list")
def list_command(
    group: str | None = typer.Argument(None, help="List this group's versions instead."),
    url: str | None = URL_OPTION,
) -> None:
    """List model package groups, or the versions of one group."""
    if group is None:
        body = _call(url, "GET", "")
        table = Table(title="model package groups", title_justify="left")
        for column in ("group", "versions", "latest", "aliases", "created"):
            table.add_column(column, justify="right" if column == "versions" else "left")
        for g in body["ModelPackageGroups"]:
            table.add_row(
                g["ModelPackageGroupName"], str(g["VersionCount"]), _text(g["LatestVersion"]),
                _aliases(g["Aliases"]), g["CreationTime"][:19],
            )  # fmt: skip
        console.print(table)
        return
    body = _call(url, "GET", f"/{_name(group)}")
    table = Table(title=f"{group}: versions", title_justify="left")
    for column in ("version", "status", "aliases", "framework", "metrics", "created"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for v in body["Versions"]:
        table.add_row(
            str(v["ModelPackageVersion"]), _status(v["ModelApprovalStatus"]),
            ", ".join(v["Aliases"]), f"{v['Framework']} {v['FrameworkVersion']}",
            _metrics(v["ModelMetrics"]), v["CreationTime"][:19],
        )  # fmt: skip
    console.print(table)


@models_app.command("show")
def show_command(
    group: str = GROUP_ARGUMENT,
    version: str = typer.Argument(..., help="Version number, or an alias such as production."),
    url: str | None = URL_OPTION,
) -> None:
    """Show one version: artefact and digest, framework, signature, metrics, lineage."""
    key = version if version.isdigit() else check_name("alias", version)
    v = _call(url, "GET", f"/{_name(group)}/versions/{key}")
    table = Table(title=v["ModelRef"], title_justify="left", show_header=False)
    table.add_column("field", style="cyan")
    table.add_column("value", overflow="fold")
    rows = [
        ("status", _status(v["ModelApprovalStatus"])),
        ("aliases", escape(", ".join(v["Aliases"])) or "-"),
        ("artifact", escape(v["ArtifactUri"])),
        ("sha256", v["Sha256"]),
        ("framework", escape(f"{v['Framework']} {v['FrameworkVersion']}")),
        ("created", v["CreationTime"]),
        ("inputs", _signature(v["InputSignature"])),
    ]
    rows += [(f"metric {k}", _text(value)) for k, value in sorted(v["ModelMetrics"].items())]
    rows += [(f"param {k}", _text(value)) for k, value in sorted(v["Parameters"].items())]
    rows += [(f"lineage {k}", _text(value)) for k, value in sorted(v["Lineage"].items())]
    for field, value in rows:
        table.add_row(field, value)
    console.print(table)


@models_app.command("approve")
def approve_command(
    group: str = GROUP_ARGUMENT,
    version: int = VERSION_ARGUMENT,
    reason: str = REASON_OPTION,
    actor: str | None = ACTOR_OPTION,
    deploy: str | None = DEPLOY_OPTION,
    skip_gate: bool = typer.Option(
        False, "--skip-gate", help="Approve without the evaluation gate (needs --reason)."
    ),
    url: str | None = URL_OPTION,
) -> None:
    """Approve a version; with --deploy, switch an endpoint to it and make it production.

    When the group has a production version and this one's lineage names its training data,
    the evaluation gate first scores both on this version's holdout and refuses a candidate
    worse beyond tolerance, saying by how much.
    """
    if skip_gate and not reason.strip():
        raise typer.BadParameter("--skip-gate needs --reason, for the audit log")
    body: dict[str, Any] = {"actor": default_actor(actor), "reason": reason, "deploy": deploy}
    body["skip_gate"] = skip_gate or None
    _print_outcome(_call(url, "POST", f"/{_name(group)}/versions/{version}/approve", body))


@models_app.command("reject")
def reject_command(
    group: str = GROUP_ARGUMENT,
    version: int = VERSION_ARGUMENT,
    reason: str = REASON_OPTION,
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Reject a version; endpoints serving it get the newest version still Approved."""
    body = {"actor": default_actor(actor), "reason": reason}
    _print_outcome(_call(url, "POST", f"/{_name(group)}/versions/{version}/reject", body))


@models_app.command("promote")
def promote_command(
    group: str = GROUP_ARGUMENT,
    version: int = VERSION_ARGUMENT,
    alias: str | None = typer.Option(None, "--alias", help="Alias to point, e.g. staging."),
    stage: str | None = typer.Option(
        None, "--stage", help="MLflow stage word instead: Staging or Production."
    ),
    reason: str = REASON_OPTION,
    actor: str | None = ACTOR_OPTION,
    deploy: str | None = DEPLOY_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Point an alias (or stage) at a version; production takes Approved versions only."""
    if (alias is None) == (stage is None):
        raise typer.BadParameter("give exactly one of --alias or --stage")
    body = {"alias": alias, "stage": stage, "actor": default_actor(actor), "reason": reason}
    body["deploy"] = deploy
    _print_outcome(_call(url, "POST", f"/{_name(group)}/versions/{version}/promote", body))


@models_app.command("history")
def history_command(
    group: str = GROUP_ARGUMENT,
    version: int | None = typer.Argument(None, min=1, help="Only this version's history."),
    url: str | None = URL_OPTION,
) -> None:
    """The audit log of a group (or one version): who changed what, when, and why."""
    path = f"/{_name(group)}" + ("/history" if version is None else f"/versions/{version}/history")
    body = _call(url, "GET", path)
    table = Table(title=f"{group}: history (oldest first)", title_justify="left")
    for column in ("time", "actor", "subject", "action", "change", "reason"):
        table.add_column(column, overflow="fold")
    for e in body["History"]:
        change = f"{e['From'] or '-'} -> {e['To'] or '-'}"
        table.add_row(
            e["Time"][:19], escape(e["Actor"]), e["Subject"], e["Action"], change,
            escape(e["Reason"]),
        )  # fmt: skip
    console.print(table)


# the API, remote or in-process ---------------------------------------------------------


def _call(url: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One registry API call; raises the ShipyardError the answer names."""
    payload = None if body is None else {k: v for k, v in body.items() if v not in (None, "")}
    return call_api(url, method, "/api/v1/models" + path, _registry_routes, body=payload)


def _registry_routes(workspace: Workspace) -> list[Route]:
    from shipyard.pipeline.deployment import registry_routes

    return registry_routes(workspace)


# formatting ----------------------------------------------------------------------------


def _print_outcome(outcome: dict[str, Any]) -> None:
    v = outcome["ModelVersion"]
    before, now = outcome["PreviousApprovalStatus"], v["ModelApprovalStatus"]
    parts = [f"{v['ModelRef']}: " + (f"{before} -> {now}" if before != now else now)]
    for move in outcome["AliasMoves"]:
        parts.append(f"{move['Alias']}: {_text(move['From'])} -> {_text(move['To'])}")
    parts += [
        f"endpoint {r['EndpointName']}: {', '.join(r['From'])} -> {r['To']}"
        for r in outcome["Redeployments"]
    ]
    if not outcome["Changed"]:
        parts.append("nothing to change")
    console.print("; ".join(parts), soft_wrap=True, markup=False)


def _name(group: str) -> str:
    """The group as a path segment; checked here, so a slash cannot reach another route."""
    return check_name("model package group", group)


def _status(status: str) -> str:
    colour = {"Approved": "green", "Rejected": "red"}.get(status, "yellow")
    return f"[{colour}]{status}[/]"


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias} -> {version}" for alias, version in aliases.items()) or "-"


def _metrics(metrics: dict[str, Any], shown: int = 3) -> str:
    items = [f"{k} {_text(v)}" for k, v in sorted(metrics.items())[:shown]]
    return escape(", ".join(items) + (" …" if len(metrics) > shown else ""))


def _signature(signature: dict[str, Any]) -> str:
    inputs = signature.get("inputs", signature)
    names = [i.get("name", "?") if isinstance(i, dict) else str(i) for i in inputs]
    return escape(f"{len(names)}: {', '.join(names)}") if names else "-"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value))
    return escape(str(value))
