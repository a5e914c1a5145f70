"""Metrics, alarms, Alertmanager and rollbacks over HTTP, on `shipyard server`.

    GET    /api/v1/metrics                          ListMetrics (no ``metric``), or
           ?endpoint=&variant=&metric=&stat=&period=&start=&end=   GetMetricStatistics
    GET    /api/v1/alarms[?state=&endpoint=]        DescribeAlarms
    GET    /api/v1/alarms/{name}                    one alarm
    PUT    /api/v1/alarms/{name}                    PutMetricAlarm (snake_case or CloudWatch keys)
    DELETE /api/v1/alarms/{name}                    DeleteAlarms
    GET    /api/v1/alarms/{name}/history            DescribeAlarmHistory
    POST   /api/v1/alarms/{name}/state              SetAlarmState {"state", "reason"}
    POST   /api/v1/alertmanager                     Alertmanager webhook (JSON version 4)
    POST   /api/v1/endpoints/{name}/rollback        {"actor", "reason", "from": "group@N"}
    GET    /api/v1/endpoints/{name}/history         traffic shares over time, and why

Errors are JSON ``{"__type", "message"}``: 400 ValidationException, 404 ResourceNotFound,
409 ConflictException, 503 ServiceUnavailable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.core.errors import (
    InvalidRequestError,
)
from shipyard.core.http import method_route, read_body_within
from shipyard.core.interfaces import TrafficController
from shipyard.core.types import ModelRef
from shipyard.monitor.actions import AlarmActions
from shipyard.monitor.alarm_format import spec_from_dict, spec_to_dict
from shipyard.monitor.alarm_manager import AlarmManager, AlarmStatus
from shipyard.monitor.alarms import STATES, check_alarm_name
from shipyard.monitor.alertmanager import handle_alerts, parse_alerts
from shipyard.monitor.history import EndpointChange, endpoint_history
from shipyard.monitor.metrics import Datapoint, MetricsStore
from shipyard.monitor.rollback import RollbackOutcome
from shipyard.monitor.statistics import check_statistic, is_percentile
from shipyard.storage import MetadataStore

MAX_BODY_BYTES = 1024 * 1024
MAX_DATAPOINTS = 1440  # CloudWatch's limit per GetMetricStatistics call
DEFAULT_ACTOR = "api"


def create_monitor_routes(
    *,
    metrics: MetricsStore,
    alarms: AlarmManager,
    actions: AlarmActions,
    traffic: TrafficController,
    meta: MetadataStore,
) -> list[Route]:
    """The routes above, acting on the given metrics, alarms, actions and endpoints."""

    async def get_metrics(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(_metric_statistics, metrics, request))

    async def list_alarms(request: Request) -> Response:
        state, endpoint = request.query_params.get("state"), request.query_params.get("endpoint")
        if state is not None and state not in STATES:
            raise InvalidRequestError(f"state {state!r} is not one of {', '.join(STATES)}")
        found = [
            alarm_json(s)
            for s in alarms.statuses()
            if (state is None or s.state == state) and endpoint in (None, s.spec.endpoint)
        ]
        return JSONResponse({"MetricAlarms": found})

    async def describe_alarm(request: Request) -> Response:
        return JSONResponse(alarm_json(alarms.status(_alarm(request))))

    async def put_alarm(request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise InvalidRequestError("the body must be a JSON object defining the alarm")
        actor = str(body.pop("actor", DEFAULT_ACTOR))
        spec = actions.check(spec_from_dict(body, name=_alarm(request)))
        status = await run_in_threadpool(lambda: alarms.put(spec, persist=True, actor=actor))
        return JSONResponse(alarm_json(status))

    async def delete_alarm(request: Request) -> Response:
        name = _alarm(request)
        actor = request.query_params.get("actor", DEFAULT_ACTOR)
        await run_in_threadpool(lambda: alarms.delete(name, actor=actor))
        return JSONResponse({"Deleted": name})

    async def alarm_history(request: Request) -> Response:
        name = _alarm(request)
        found = await run_in_threadpool(alarms.events, name)
        if not found:
            alarms.status(name)  # names the known alarms when this one never existed
        return JSONResponse({"AlarmName": name, "AlarmHistoryItems": [_history(e) for e in found]})

    async def set_state(request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise InvalidRequestError('the body must be {"state": ..., "reason": ...}')
        state = body.get("state", body.get("StateValue"))
        reason = body.get("reason", body.get("StateReason", ""))
        if not isinstance(state, str) or not isinstance(reason, str):
            raise InvalidRequestError('the body must be {"state": ..., "reason": ...}')
        name, actor = _alarm(request), str(body.get("actor", DEFAULT_ACTOR))
        changed = await run_in_threadpool(
            lambda: alarms.set_state(name, state, reason=reason, actor=actor)
        )
        return JSONResponse({**alarm_json(alarms.status(name)), "Changed": changed is not None})

    async def alertmanager(request: Request) -> Response:
        alerts = parse_alerts(await _json(request))
        outcomes = await run_in_threadpool(handle_alerts, alerts, actions, meta)
        return JSONResponse({"Received": len(alerts), "Alerts": outcomes})

    async def rollback(request: Request) -> Response:
        endpoint = request.path_params["name"]
        body = await _json(request)
        body = {} if body is None else body
        if not isinstance(body, dict) or set(body) - {"actor", "reason", "from"}:
            raise InvalidRequestError('the body may hold only "actor", "reason" and "from"')
        suspect = _ref(body["from"]) if body.get("from") else None
        outcome = await run_in_threadpool(
            lambda: actions.rollback(
                endpoint,
                reason=str(body.get("reason") or "rollback requested"),
                actor=str(body.get("actor") or DEFAULT_ACTOR),
                trigger="manual",
                suspect=suspect,
            )
        )
        return JSONResponse(rollback_json(outcome))

    async def history(request: Request) -> Response:
        endpoint = request.path_params["name"]
        changes = await run_in_threadpool(endpoint_history, meta, endpoint)
        if not changes:
            traffic.serving_versions(endpoint)  # raises NotFoundError naming the endpoints
        return JSONResponse(
            {"EndpointName": endpoint, "History": [change_json(c) for c in changes]}
        )

    alarm = "/api/v1/alarms/{name}"
    return [
        method_route("/api/v1/metrics", GET=get_metrics),
        method_route("/api/v1/alarms", GET=list_alarms),
        method_route(alarm, GET=describe_alarm, PUT=put_alarm, DELETE=delete_alarm),
        method_route(alarm + "/history", GET=alarm_history),
        method_route(alarm + "/state", POST=set_state),
        method_route("/api/v1/alertmanager", POST=alertmanager),
        method_route("/api/v1/endpoints/{name}/rollback", POST=rollback),
        method_route("/api/v1/endpoints/{name}/history", GET=history),
    ]


# JSON shapes, shared with the CLI --------------------------------------------------------


def alarm_json(status: AlarmStatus) -> dict[str, Any]:
    return {
        **spec_to_dict(status.spec),
        "StateValue": status.state,
        "StateReason": status.reason,
        "StateUpdatedTimestamp": _iso(status.updated_s),
        "Origin": status.origin,
    }


def rollback_json(outcome: RollbackOutcome) -> dict[str, Any]:
    return {
        "EndpointName": outcome.endpoint,
        "RolledBack": outcome.rolled_back,
        "From": str(outcome.from_ref),
        "To": None if outcome.to_ref is None else str(outcome.to_ref),
        "Reason": outcome.reason,
        "Seconds": round(outcome.seconds, 4),
    }


def change_json(change: EndpointChange) -> dict[str, Any]:
    return {
        "Time": _iso(change.at_s),
        "Action": change.action,
        "From": change.from_state,
        "To": change.to_state,
        "Actor": change.actor,
        "Reason": change.reason,
        "Traffic": [
            {"Variant": s.variant, "ModelPackage": str(s.model), "Share": round(s.share, 6)}
            for s in change.traffic
        ],
        "TrafficChanged": change.traffic_changed,
    }


def datapoint_json(point: Datapoint) -> dict[str, Any]:
    basic = {k: v for k, v in point.values.items() if not is_percentile(k)}
    extended = {k: v for k, v in point.values.items() if is_percentile(k)}
    body: dict[str, Any] = {
        "Timestamp": _iso(point.start_s),
        "SampleCount": point.sample_count,
        **basic,
        "Requests": point.requests,
        "Unit": point.unit,
    }
    if extended:
        body["ExtendedStatistics"] = extended
    return body


def _history(event: dict[str, Any]) -> dict[str, Any]:
    kind = {"state": "StateUpdate", "action": "Action"}.get(event["action"], "ConfigurationUpdate")
    if event["action"] == "state":
        summary = f"Alarm updated from {event['from_state']} to {event['to_state']}"
    elif event["action"] == "action":
        summary = event["reason"]
    else:
        summary = f"Alarm {'deleted' if event['action'] == 'delete' else 'updated'}"
    return {
        "Timestamp": _iso(float(event["at_epoch_s"])),
        "HistoryItemType": kind,
        "HistorySummary": summary,
        "Actor": event["actor"],
        "HistoryData": {
            "oldState": event["from_state"],
            "newState": event["to_state"],
            "reason": event["reason"],
            **(event["details"] or {}),
        },
    }


# request parsing ---------------------------------------------------------------------------


def _metric_statistics(metrics: MetricsStore, request: Request) -> dict[str, Any]:
    params = request.query_params
    endpoint, metric = params.get("endpoint"), params.get("metric")
    variant = params.get("variant") or None
    if metric is None:
        series = [(e, v) for e, v in metrics.endpoints() if endpoint in (None, e)]
        return {
            "Metrics": [
                {"EndpointName": e, "VariantName": v, "MetricName": m}
                for e, v in series
                for m in metrics.metric_names(e, v)
            ]
        }
    if not endpoint:
        raise InvalidRequestError("a metric query needs ?endpoint=")
    stats = [s for value in params.getlist("stat") for s in value.split(",") if s]
    stats = [check_statistic(s) for s in stats or ["Average", "SampleCount"]]
    period = _integer(params.get("period", "60"), "period")
    end = _moment(params.get("end"), "end", default=datetime.now(UTC).timestamp())
    start = _moment(params.get("start"), "start", default=end - 3600)
    if end <= start:
        raise InvalidRequestError(f"end ({end}) must be after start ({start})")
    if (end - start) / period > MAX_DATAPOINTS:
        raise InvalidRequestError(
            f"{(end - start) / period:.0f} periods asked for; at most {MAX_DATAPOINTS} per "
            "query: raise period or narrow start..end"
        )
    points = metrics.datapoints(
        metric, stats, endpoint=endpoint, variant=variant, period_s=period,
        start_s=start, end_s=end,
    )  # fmt: skip
    return {"Label": metric, "Datapoints": [datapoint_json(p) for p in points]}


def _integer(text: str, name: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InvalidRequestError(f"{name} must be a whole number of seconds >= 1, got {text!r}")
    return int(text)


def _moment(text: str | None, name: str, *, default: float) -> float:
    """Epoch seconds or an ISO 8601 time (naive means UTC)."""
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(
            f"{name} {text!r} is neither epoch seconds nor an ISO 8601 time"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _ref(text: Any) -> ModelRef:
    try:
        return ModelRef.parse(str(text))
    except ValueError as exc:
        raise InvalidRequestError(f'"from": {exc}') from None


def _alarm(request: Request) -> str:
    return check_alarm_name(request.path_params["name"])


async def _json(request: Request) -> Any:
    raw = await read_body_within(request, MAX_BODY_BYTES)
    if raw is None:
        raise InvalidRequestError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not JSON: {exc}") from None


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()
