"""Alertmanager's webhook (JSON format version 4): firing alerts trigger Shipyard's actions.

A firing alert with an ``endpoint`` label and ``action=rollback`` (as a label or an
annotation, which is what ``shipyard monitor prometheus-rules`` writes) rolls that endpoint
back through the same controller as every other trigger. The suspect is the newest version
that served when the alert started (``startsAt``), so Alertmanager's repeats of the same alert,
before or after a server restart, roll back nothing more. Every alert received, firing or
resolved, is recorded as an ``alertmanager`` event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipyard.core.errors import InvalidRequestError, ShipyardError
from shipyard.monitor.actions import AlarmActions
from shipyard.monitor.alarms import ROLLBACK
from shipyard.storage import MetadataStore, record_event

logger = logging.getLogger(__name__)

FIRING = "firing"
RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at_s: float | None
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "unnamed")

    @property
    def action(self) -> str:
        return self.labels.get("action") or self.annotations.get("action", "")


def parse_alerts(body: Any) -> list[Alert]:
    """The alerts of a webhook body; a malformed one is an InvalidRequestError naming why."""
    if not isinstance(body, dict):
        raise InvalidRequestError("an Alertmanager notification must be a JSON object")
    if str(body.get("version", "")) != "4":
        raise InvalidRequestError(
            f"Alertmanager webhook version {body.get('version')!r} is not supported; "
            "Shipyard reads version 4"
        )
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidRequestError("the notification has no 'alerts' list")
    return [_alert(i, a) for i, a in enumerate(alerts)]


def handle_alerts(
    alerts: list[Alert], actions: AlarmActions, meta: MetadataStore
) -> list[dict[str, Any]]:
    """Act on each alert and record it; returns one outcome per alert."""
    return [_handle(alert, actions, meta) for alert in alerts]


def _handle(alert: Alert, actions: AlarmActions, meta: MetadataStore) -> dict[str, Any]:
    endpoint = alert.labels.get("endpoint", "")
    outcome: dict[str, Any] = {"Alert": alert.name, "Status": alert.status, "Endpoint": endpoint}
    if alert.status != FIRING:
        outcome["Outcome"] = "recorded"
    elif alert.action != ROLLBACK:
        outcome["Outcome"] = f"recorded; no action (action={alert.action or 'none'})"
    elif not endpoint:
        outcome["Outcome"] = "error: action=rollback needs an 'endpoint' label"
    else:
        outcome["Outcome"] = _rollback(alert, endpoint, actions)
    try:
        with meta.transaction() as connection:
            record_event(
                connection,
                entity_kind="alertmanager",
                entity_id=alert.name,
                action=alert.status,
                reason=outcome["Outcome"],
                actor="alertmanager",
                details={
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "starts_at_s": alert.starts_at_s,
                    "fingerprint": alert.fingerprint,
                },
            )
    except ShipyardError:
        logger.exception("could not record Alertmanager alert %s", alert.name)
    return outcome


def _rollback(alert: Alert, endpoint: str, actions: AlarmActions) -> str:
    started = alert.starts_at_s
    summary = alert.annotations.get("summary") or alert.annotations.get("description", "")
    try:
        suspect = (
            None
            if started is None
            else actions.suspect(endpoint, started, started, by_errors=False)
        )
        done = actions.rollback(
            endpoint,
            reason=f"Alertmanager alert {alert.name} firing" + (f": {summary}" if summary else ""),
            actor=f"alertmanager ({alert.name})",
            trigger=f"alertmanager {alert.name}",
            suspect=suspect,
        )
    except ShipyardError as exc:
        return f"error: {exc}"
    if done.rolled_back:
        return f"rolled back {endpoint}: {done.from_ref} -> {done.to_ref}"
    return f"no-op: {done.reason}"


def _alert(index: int, raw: Any) -> Alert:
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"alert {index} is not a JSON object")
    status = raw.get("status")
    if status not in (FIRING, RESOLVED):
        raise InvalidRequestError(f"alert {index}: status {status!r} is not firing or resolved")
    labels, annotations = raw.get("labels", {}), raw.get("annotations", {})
    for field, value in (("labels", labels), ("annotations", annotations)):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidRequestError(f"alert {index}: {field} must map names to strings")
    return Alert(
        status,
        labels,
        annotations,
        _time(index, raw.get("startsAt")),
        str(raw.get("fingerprint", "")),
    )


def _time(index: int, text: Any) -> float | None:
    if text in (None, "") or str(text).startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidRequestError(
            f"alert {index}: startsAt {text!r} is not an RFC 3339 time"
        ) from None
