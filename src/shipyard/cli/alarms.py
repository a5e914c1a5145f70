"""`shipyard alarms …`: CloudWatch-style alarms, through the server's /api/v1/alarms.

Exit codes: 0 done, 1 refused (unknown alarm, a bad definition), 2 a usage error, a bad
setting, or a server named with ``--url`` that does not answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.api_client import ACTOR_OPTION, URL_OPTION, call_api, default_actor
from shipyard.cli.console import console
from shipyard.monitor import STATES, check_alarm_name, load_alarm_file, spec_to_dict

if TYPE_CHECKING:
    from starlette.routing import Route

    from shipyard.pipeline import Workspace

alarms_app = typer.Typer(
    help="CloudWatch-style alarms: list, describe, history, apply, delete, set-state.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

NAME_ARGUMENT = typer.Argument(..., help="Alarm name.")
FILE_ARGUMENT = typer.Argument(..., help="YAML file of alarms (a list, or an 'alarms:' list).")
_STATE_COLOURS = {"OK": "green", "ALARM": "red", "INSUFFICIENT_DATA": "yellow"}


def _routes(workspace: Workspace) -> list[Route]:
    from shipyard.pipeline.monitoring import monitor_routes

    return monitor_routes(workspace)


def _call(url: str | None, method: str, path: str, **kwargs: Any) -> Any:
    return call_api(url, method, "/api/v1/alarms" + path, _routes, **kwargs)


@alarms_app.command("list")
def list_command(
    state: str | None = typer.Option(None, "--state", help="Only alarms in this state."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Only this endpoint's alarms."),
    url: str | None = URL_OPTION,
) -> None:
    """List alarms with their state and rule."""
    params = {k: v for k, v in (("state", state), ("endpoint", endpoint)) if v}
    body = _call(url, "GET", "", params=params)
    table = Table(title="alarms", title_justify="left")
    for column in ("alarm", "state", "rule", "actions", "since", "origin"):
        table.add_column(column, overflow="fold")
    for a in body["MetricAlarms"]:
        table.add_row(
            escape(a["AlarmName"]), _state(a["StateValue"]), escape(_rule(a)),
            escape(", ".join(a["AlarmActions"]) or "-"), a["StateUpdatedTimestamp"][:19],
            a["Origin"],
        )  # fmt: skip
    console.print(table)


@alarms_app.command("describe")
def describe_command(name: str = NAME_ARGUMENT, url: str | None = URL_OPTION) -> None:
    """Show one alarm: its rule, actions, state and the reason for it."""
    a = _call(url, "GET", f"/{check_alarm_name(name)}")
    table = Table(title=a["AlarmName"], title_justify="left", show_header=False)
    table.add_column("field", style="cyan")
    table.add_column("value", overflow="fold")
    rows = [
        ("state", _state(a["StateValue"])),
        ("reason", escape(a["StateReason"])),
        ("since", a["StateUpdatedTimestamp"]),
        ("rule", escape(_rule(a))),
        ("treat missing data", a["TreatMissingData"]),
        ("min requests", str(a["MinRequests"])),
        ("alarm actions", escape(", ".join(a["AlarmActions"]) or "-")),
        ("ok actions", escape(", ".join(a["OKActions"]) or "-")),
        ("insufficient data actions", escape(", ".join(a["InsufficientDataActions"]) or "-")),
        ("actions enabled", str(a["ActionsEnabled"]).lower()),
        ("description", escape(a["AlarmDescription"] or "-")),
        ("origin", a["Origin"]),
    ]
    for field, value in rows:
        table.add_row(field, value)
    console.print(table)


@alarms_app.command("history")
def history_command(name: str = NAME_ARGUMENT, url: str | None = URL_OPTION) -> None:
    """Every change of an alarm, oldest first: definitions, state transitions (with their
    reasons) and the actions they ran."""
    body = _call(url, "GET", f"/{check_alarm_name(name)}/history")
    table = Table(title=f"{name}: history (oldest first)", title_justify="left")
    for column in ("time", "type", "summary", "reason", "actor"):
        table.add_column(column, overflow="fold")
    for item in body["AlarmHistoryItems"]:
        reason = item["HistoryData"]["reason"] if item["HistoryItemType"] != "Action" else ""
        table.add_row(
            item["Timestamp"][:19], item["HistoryItemType"], escape(item["HistorySummary"]),
            escape(reason or ""), escape(item["Actor"]),
        )  # fmt: skip
    console.print(table)


@alarms_app.command("apply")
def apply_command(
    file: Path = FILE_ARGUMENT,
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Create or update every alarm of a YAML file (alarms not in it are left alone)."""
    specs = load_alarm_file(file)  # every definition is checked before any is applied
    who = default_actor(actor)
    for spec in specs:
        body = {**spec_to_dict(spec), "actor": who}
        answer = _call(url, "PUT", f"/{spec.name}", body=body)
        console.print(
            f"{answer['AlarmName']}: {_rule(answer)} ({answer['StateValue']})",
            soft_wrap=True,
            markup=False,
        )


@alarms_app.command("delete")
def delete_command(
    name: str = NAME_ARGUMENT, actor: str | None = ACTOR_OPTION, url: str | None = URL_OPTION
) -> None:
    """Delete an alarm (its history stays in the audit log)."""
    _call(url, "DELETE", f"/{check_alarm_name(name)}", params={"actor": default_actor(actor)})
    console.print(f"{name}: deleted", markup=False)


@alarms_app.command("set-state")
def set_state_command(
    name: str = NAME_ARGUMENT,
    state: str = typer.Argument(..., help="OK, ALARM or INSUFFICIENT_DATA."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the history)."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Force an alarm's state until its next evaluation; the state's actions run (a test)."""
    if state not in STATES:
        raise typer.BadParameter(f"{state!r} is not one of {', '.join(STATES)}")
    body = {"state": state, "reason": reason, "actor": default_actor(actor)}
    a = _call(url, "POST", f"/{check_alarm_name(name)}/state", body=body)
    change = "set" if a["Changed"] else "already"
    console.print(f"{name}: {change} {a['StateValue']}", markup=False)


def _rule(a: dict[str, Any]) -> str:
    words = {
        "GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">=",
        "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<=",
    }  # fmt: skip
    where = " / ".join(d["Value"] for d in a["Dimensions"])
    statistic = a.get("ExtendedStatistic") or a.get("Statistic")
    n = a["EvaluationPeriods"]
    return (
        f"{statistic} of {a['MetricName']} on {where} {words[a['ComparisonOperator']]} "
        f"{a['Threshold']:g} in {a['DatapointsToAlarm'] or n} of {n} x {a['Period']} s"
    )


def _state(state: str) -> str:
    return f"[{_STATE_COLOURS.get(state, 'white')}]{state}[/]"
