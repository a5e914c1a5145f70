"""`shipyard endpoints …`: create, update, describe, list and delete endpoints; roll one back,
and show its traffic history.

`create` and `update` store a new endpoint config from the options (or a CreateEndpointConfig
JSON file) and point the endpoint at it; an update that cannot load leaves the old config
serving.

`rollback` takes the path every automatic trigger takes (the rollback controller): the endpoint
returns to the newest Approved version of its group older than the one it serves, the
registry's ``production`` alias moves there, the version left is Rejected, and the audit log
records it all. It is idempotent: ``--from GROUP@N`` rolls back only while that version serves,
so repeating the command (or racing an alarm) changes nothing more. During a blue/green
deployment (`update --deployment ...`), it sends all traffic back to the old fleet instead.

Exit codes: 0 done (or nothing to do), 1 refused (unknown endpoint, no older Approved
version, an endpoint that Failed to load, a bad config), 2 a usage error, a bad setting, or
a server named with ``--url`` that does not answer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.api_client import URL_OPTION, call_api, default_actor
from shipyard.cli.console import console
from shipyard.cli.deployment_options import (
    ALARM_OPTION,
    DEPLOYMENT_FILE_OPTION,
    DRIFT_OPTION,
    MIN_REQUESTS_OPTION,
    STEP_OPTION,
    STRATEGY_OPTION,
    TERMINATION_OPTION,
    TIMEOUT_OPTION,
    WAIT_OPTION,
    deployment_document,
)
from shipyard.core.errors import InvalidRequestError, StateError
from shipyard.core.names import check_name

if TYPE_CHECKING:
    from starlette.routing import Route

    from shipyard.pipeline import Workspace

endpoints_app = typer.Typer(
    help="Endpoints: create, update, describe, list, delete, roll back, traffic history.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

NAME_ARGUMENT = typer.Argument(..., help="Endpoint name.")


def _routes(workspace: Workspace) -> list[Route]:
    from shipyard.pipeline.monitoring import monitor_routes

    return monitor_routes(workspace)


def _call(url: str | None, method: str, path: str, **kwargs: Any) -> Any:
    return call_api(url, method, "/api/v1/endpoints" + path, _routes, **kwargs)


@endpoints_app.command("rollback")
def rollback_command(
    name: str = NAME_ARGUMENT,
    from_version: str | None = typer.Option(
        None, "--from", metavar="GROUP@N", help="Roll back only while this version serves."
    ),
    reason: str = typer.Option("", "--reason", help="Why, for the audit log."),
    actor: str | None = typer.Option(None, "--actor", help="Who acts (default: $USER)."),
    url: str | None = URL_OPTION,
) -> None:
    """Return an endpoint to the previous Approved version of its group."""
    body = {
        "actor": default_actor(actor),
        "reason": reason or "rollback requested on the command line",
    }
    if from_version:
        body["from"] = from_version
    answer = _call(url, "POST", f"/{check_name('endpoint', name)}/rollback", body=body)
    if answer["RolledBack"]:
        console.print(
            f"{name}: rolled back {answer['From']} -> {answer['To']} in {answer['Seconds']:.2f} s",
            markup=False,
        )
    else:
        console.print(f"{name}: {answer['Reason']}", markup=False, soft_wrap=True)


@endpoints_app.command("history")
def history_command(
    name: str = NAME_ARGUMENT,
    changes_only: bool = typer.Option(
        False, "--changes-only", help="Only the events that changed the traffic split."
    ),
    url: str | None = URL_OPTION,
) -> None:
    """Which version served which share of traffic when, and why each change happened."""
    body = _call(url, "GET", f"/{check_name('endpoint', name)}/history")
    table = Table(title=f"{name}: history (oldest first)", title_justify="left")
    for column in ("time", "traffic", "event", "actor", "reason"):
        table.add_column(column, overflow="fold")
    for item in body["History"]:
        if changes_only and not item["TrafficChanged"]:
            continue
        traffic = ", ".join(f"{t['ModelPackage']} {t['Share']:.0%}" for t in item["Traffic"])
        shown = f"[bold]{escape(traffic)}[/]" if item["TrafficChanged"] else escape(traffic)
        table.add_row(
            item["Time"][:19], shown or "-", escape(_event(item)), escape(item["Actor"]),
            escape(item["Reason"]),
        )  # fmt: skip
    console.print(table)


def _event(item: dict[str, Any]) -> str:
    if item["From"] or item["To"]:
        return f"{item['Action']} {item['From'] or '-'} -> {item['To'] or '-'}"
    return str(item["Action"])


# create, update, describe, list, delete ------------------------------------------------

VARIANT_OPTION = typer.Option(
    None,
    "--variant",
    metavar="NAME=GROUP@N[:WEIGHT[:INSTANCES]]",
    help="A production variant (repeat for A/B); weight defaults to 1, instances to 1.",
)
MODEL_OPTION = typer.Option(
    None, "--model", metavar="GROUP@N", help="Shorthand for one variant AllTraffic=GROUP@N."
)
SHADOW_OPTION = typer.Option(
    None, "--shadow", metavar="NAME=GROUP@N", help="A shadow variant that gets a copy of traffic."
)
SHADOW_PERCENT_OPTION = typer.Option(
    100.0, "--shadow-percent", min=0, max=100, help="Share of requests copied to the shadow."
)
CAPTURE_PERCENT_OPTION = typer.Option(
    None, "--capture-percent", min=0, max=100, help="Capture this share of requests (off if unset)."
)
CAPTURE_MODE_OPTION = typer.Option(
    "InputAndOutput", "--capture-mode", help="Input, Output or InputAndOutput."
)
CONFIG_FILE_OPTION = typer.Option(
    None,
    "--config-file",
    help="A CreateEndpointConfig JSON document instead of the options above.",
    exists=True,
    dir_okay=False,
)


def _manage_routes(workspace: Workspace) -> list[Route]:
    from shipyard.serve.api import create_endpoint_api_routes

    return create_endpoint_api_routes(workspace.endpoints)


def _manage(url: str | None, method: str, path: str, **kwargs: Any) -> Any:
    return call_api(url, method, path, _manage_routes, **kwargs)


def _variant_document(text: str, where: str) -> dict[str, Any]:
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    if not sep or not name or not parts[0] or len(parts) > 3:
        raise InvalidRequestError(f"{where} {text!r} must be NAME=GROUP@N[:WEIGHT[:INSTANCES]]")
    document: dict[str, Any] = {"VariantName": name, "ModelName": parts[0]}
    try:
        if len(parts) > 1:
            document["InitialVariantWeight"] = float(parts[1])
        if len(parts) > 2:
            document["InitialInstanceCount"] = int(parts[2])
    except ValueError:
        raise InvalidRequestError(
            f"{where} {text!r}: WEIGHT is a number, INSTANCES an integer"
        ) from None
    return document


def _config_document(
    endpoint: str,
    variants: list[str] | None,
    model: str | None,
    shadow: str | None,
    shadow_percent: float,
    capture_percent: float | None,
    capture_mode: str,
    config_file: Path | None,
) -> dict[str, Any]:
    """The endpoint config the options describe, named after the endpoint and the time."""
    name = f"{endpoint}-{time.strftime('%Y%m%d%H%M%S')}-{time.time_ns() % 1000:03d}"
    if config_file is not None:
        try:
            document = orjson.loads(config_file.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"{config_file} is not valid JSON: {exc}") from None
        if isinstance(document, dict):
            document.setdefault("EndpointConfigName", name)
        return document  # type: ignore[no-any-return]
    listed = [_variant_document(v, "--variant") for v in variants or []]
    if model:
        listed.append({"VariantName": "AllTraffic", "ModelName": model})
    if not listed:
        raise InvalidRequestError("give --model GROUP@N, --variant ... or --config-file FILE")
    document = {"EndpointConfigName": name, "ProductionVariants": listed}
    if shadow:
        document["ShadowProductionVariants"] = [_variant_document(shadow, "--shadow")]
        document["ShadowSamplingPercentage"] = shadow_percent
    if capture_percent is not None:
        document["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": capture_percent,
            "CaptureOptions": [{"CaptureMode": capture_mode}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        }
    return document


def _print_endpoint(body: dict[str, Any]) -> None:
    status = body["EndpointStatus"]
    console.print(
        f"{body['EndpointName']}: {status} (config {body['EndpointConfigName']})", markup=False
    )
    for variant in body["ProductionVariants"]:
        console.print(
            f"  {variant['VariantName']}: {variant['ModelPackage']} weight "
            f"{variant['CurrentWeight']:g}, {variant['CurrentInstanceCount']} instance(s)",
            markup=False,
        )
    pending = body.get("PendingDeploymentSummary")
    if pending is not None:
        routing = pending["DeploymentConfig"]["BlueGreenUpdatePolicy"]
        console.print(
            f"  deploying {pending['PreviousEndpointConfigName']} -> "
            f"{pending['EndpointConfigName']}: {routing['TrafficRoutingConfiguration']['Type']} "
            f"step {pending['Step']}/{pending['Steps']}, {pending['NewFleetShare']:.0%} on the "
            "new fleet",
            markup=False,
        )
    for shadow in body.get("ShadowProductionVariants", []):
        console.print(
            f"  shadow {shadow['VariantName']}: {shadow['ModelPackage']} "
            f"({shadow['SamplingPercentage']:g} % of requests)",
            markup=False,
        )
    if "DataCaptureConfig" in body:
        capture = body["DataCaptureConfig"]
        console.print(
            f"  capture: {capture['CaptureStatus']} at {capture['CurrentSamplingPercentage']:g} % "
            f"to {capture['DestinationS3Uri']}/",
            markup=False,
        )
    if "MultiModelConfig" in body:
        multi = body["MultiModelConfig"]
        console.print(
            f"  multi-model: group {multi['ModelPackageGroupName']}, at most "
            f"{multi['MaxModels']} loaded",
            markup=False,
        )
    if status == "Failed":
        raise StateError(f"endpoint {body['EndpointName']} Failed: {body['FailureReason']}")


@endpoints_app.command("create")
def create_command(
    name: str = NAME_ARGUMENT,
    variants: list[str] | None = VARIANT_OPTION,
    model: str | None = MODEL_OPTION,
    shadow: str | None = SHADOW_OPTION,
    shadow_percent: float = SHADOW_PERCENT_OPTION,
    capture_percent: float | None = CAPTURE_PERCENT_OPTION,
    capture_mode: str = CAPTURE_MODE_OPTION,
    config_file: Path | None = CONFIG_FILE_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Create an endpoint (and its endpoint config); exit code 1 if it Failed to load."""
    check_name("endpoint", name)
    document = _config_document(
        name, variants, model, shadow, shadow_percent, capture_percent, capture_mode, config_file
    )
    config = _manage(url, "POST", "/api/v1/endpoint-configs", body=document)
    body = {"EndpointName": name, "EndpointConfigName": config["EndpointConfigName"]}
    _print_endpoint(_manage(url, "POST", "/api/v1/endpoints", body=body))


@endpoints_app.command("update")
def update_command(
    name: str = NAME_ARGUMENT,
    variants: list[str] | None = VARIANT_OPTION,
    model: str | None = MODEL_OPTION,
    shadow: str | None = SHADOW_OPTION,
    shadow_percent: float = SHADOW_PERCENT_OPTION,
    capture_percent: float | None = CAPTURE_PERCENT_OPTION,
    capture_mode: str = CAPTURE_MODE_OPTION,
    config_file: Path | None = CONFIG_FILE_OPTION,
    strategy: str | None = STRATEGY_OPTION,
    step_percent: int | None = STEP_OPTION,
    wait: float = WAIT_OPTION,
    termination_wait: float = TERMINATION_OPTION,
    max_time: float = TIMEOUT_OPTION,
    alarms: list[str] | None = ALARM_OPTION,
    min_requests: int | None = MIN_REQUESTS_OPTION,
    max_score_drift: float | None = DRIFT_OPTION,
    deployment_file: Path | None = DEPLOYMENT_FILE_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Move an endpoint to a new config; if it cannot load, the old one keeps serving.

    With --deployment, the new fleet takes traffic in guarded blue/green steps; the command
    returns once the first step is in force (follow it with `describe` or `history`).
    """
    check_name("endpoint", name)
    deployment = deployment_document(
        strategy, step_percent, wait, termination_wait, max_time, alarms, min_requests,
        max_score_drift, deployment_file,
    )  # fmt: skip
    document = _config_document(
        name, variants, model, shadow, shadow_percent, capture_percent, capture_mode, config_file
    )
    config = _manage(url, "POST", "/api/v1/endpoint-configs", body=document)
    body: dict[str, Any] = {"EndpointConfigName": config["EndpointConfigName"]}
    if deployment is not None:
        body["DeploymentConfig"] = deployment
    _print_endpoint(_manage(url, "PUT", f"/api/v1/endpoints/{name}", body=body))


@endpoints_app.command("describe")
def describe_command(
    name: str = NAME_ARGUMENT,
    as_json: bool = typer.Option(False, "--json", help="Print DescribeEndpoint's JSON."),
    url: str | None = URL_OPTION,
) -> None:
    """An endpoint's status, variants, shadow, capture and multi-model settings."""
    body = _manage(url, "GET", f"/api/v1/endpoints/{check_name('endpoint', name)}")
    if as_json:
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    elif body["EndpointStatus"] == "Failed":
        console.print(f"{name}: Failed: {body['FailureReason']}", markup=False, soft_wrap=True)
    else:
        _print_endpoint(body)


@endpoints_app.command("list")
def list_command(url: str | None = URL_OPTION) -> None:
    """Every endpoint with its status and traffic split."""
    table = Table(title="endpoints", title_justify="left")
    for column in ("name", "status", "config", "variants"):
        table.add_column(column, overflow="fold")
    for item in _manage(url, "GET", "/api/v1/endpoints")["Endpoints"]:
        split = ", ".join(
            f"{v['VariantName']}={v['ModelPackage']}:{v['CurrentWeight']:g}"
            for v in item["ProductionVariants"]
        )
        table.add_row(
            escape(item["EndpointName"]), item["EndpointStatus"],
            escape(item["EndpointConfigName"]), escape(split),
        )  # fmt: skip
    console.print(table)


@endpoints_app.command("delete")
def delete_command(name: str = NAME_ARGUMENT, url: str | None = URL_OPTION) -> None:
    """Stop serving an endpoint and remove it (its configs stay)."""
    _manage(url, "DELETE", f"/api/v1/endpoints/{check_name('endpoint', name)}")
    console.print(f"{name}: deleted", markup=False)
