"""`shipyard monitor prometheus-rules`: the alarms as Prometheus alerting rules.

The rules watch the names Shipyard exposes on ``/metrics``; with ``--alertmanager-out`` the
command also writes an Alertmanager configuration that sends every alert to the server's
``/api/v1/alertmanager`` webhook, where firing alerts labelled ``action=rollback`` roll their
endpoint back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import yaml

from shipyard.cli.api_client import call_api
from shipyard.cli.console import console, errors
from shipyard.core.config import load_settings
from shipyard.core.errors import InvalidRequestError
from shipyard.monitor import alertmanager_config, prometheus_rules, spec_from_dict

if TYPE_CHECKING:
    from starlette.routing import Route

    from shipyard.pipeline import Workspace

_STATE_KEYS = ("StateValue", "StateReason", "StateUpdatedTimestamp", "Origin")


def _routes(workspace: Workspace) -> list[Route]:
    from shipyard.pipeline.monitoring import monitor_routes

    return monitor_routes(workspace)


OUT_OPTION = typer.Option(None, "--out", help="Write the rules here (default: stdout).")
SCRAPE_OPTION = typer.Option(
    15.0, "--scrape-interval", min=0.1, help="Prometheus' scrape interval, seconds."
)
ALARM_OPTION = typer.Option(
    [], "--alarm", help="Only this alarm (repeatable; default: every alarm)."
)
ALERTMANAGER_OPTION = typer.Option(
    None, "--alertmanager-out", help="Also write an Alertmanager config routing to Shipyard."
)
WEBHOOK_OPTION = typer.Option(
    None, "--webhook-url", help="Webhook for --alertmanager-out (default: this server's)."
)
URL_OPTION = typer.Option(
    None, "--url", help="Server to read alarms from (default: the configured one)."
)


def prometheus_rules_command(
    out: Path | None = OUT_OPTION,
    scrape_interval: float = SCRAPE_OPTION,
    alarm: list[str] = ALARM_OPTION,
    alertmanager_out: Path | None = ALERTMANAGER_OPTION,
    webhook_url: str | None = WEBHOOK_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Write Prometheus alerting rules equivalent to the alarms."""
    listed = call_api(url, "GET", "/api/v1/alarms", _routes)["MetricAlarms"]
    known = {a["AlarmName"] for a in listed}
    unknown = sorted(set(alarm) - known)
    if unknown:
        raise InvalidRequestError(
            f"no alarm {', '.join(unknown)}; alarms: {', '.join(sorted(known)) or 'none'}"
        )
    specs = [
        spec_from_dict({k: v for k, v in a.items() if k not in _STATE_KEYS})
        for a in listed
        if not alarm or a["AlarmName"] in alarm
    ]
    document, skipped = prometheus_rules(specs, scrape_interval_s=scrape_interval)
    for problem in skipped:
        errors.print(f"skipped: {problem}", markup=False, soft_wrap=True)
    _write(document, out, f"{len(document['groups'][0]['rules'])} rule(s)")
    if alertmanager_out is not None:
        if webhook_url is None:
            settings = load_settings()
            server = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
            webhook_url = f"{server}/api/v1/alertmanager"
        _write(alertmanager_config(webhook_url), alertmanager_out, f"webhook {webhook_url}")


def _write(document: dict[str, Any], path: Path | None, summary: str) -> None:
    text = yaml.safe_dump(document, sort_keys=False, width=1000)
    if path is None:
        console.out(text, end="", highlight=False)
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidRequestError(f"cannot write {path}: {exc.strerror or exc}") from None
    errors.print(f"wrote {path}: {summary}", markup=False, soft_wrap=True)
