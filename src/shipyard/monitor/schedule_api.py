"""Monitoring schedules over HTTP, on `shipyard server` (SageMaker's *MonitoringSchedule calls).

    GET    /api/v1/monitoring-schedules               ListMonitoringSchedules (+ last execution)
    GET    /api/v1/monitoring-schedules/{name}        DescribeMonitoringSchedule (+ executions)
    PUT    /api/v1/monitoring-schedules/{name}        CreateMonitoringSchedule (snake_case fields
                                                     of MonitoringSchedule, plus "actor")
    DELETE /api/v1/monitoring-schedules/{name}
    POST   /api/v1/monitoring-schedules/{name}/run    run it now; answers with the execution

Executions publish their metrics to the server's metrics store, where alarms watch them.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.core.errors import InvalidRequestError
from shipyard.core.http import method_route
from shipyard.monitor.api import DEFAULT_ACTOR, _json
from shipyard.monitor.schedule import Execution, MonitoringSchedule, MonitoringScheduler

_TEXT = ("monitoring_type", "schedule_expression", "current", "baseline")
_OPTIONAL_TEXT = ("labels", "endpoint", "time_column")
_FIELDS = {f.name for f in fields(MonitoringSchedule)} - {"name", "created_at"}


def create_schedule_routes(scheduler: MonitoringScheduler) -> list[Route]:
    """The routes above, acting on ``scheduler``."""

    async def list_schedules(request: Request) -> Response:
        def collect() -> list[dict[str, Any]]:
            return [
                {**s.to_dict(), "last_execution": _last(scheduler.executions(s.name))}
                for s in scheduler.schedules()
            ]

        return JSONResponse({"MonitoringSchedules": await run_in_threadpool(collect)})

    async def describe(request: Request) -> Response:
        name = request.path_params["name"]
        schedule = await run_in_threadpool(scheduler.get, name)
        executions = await run_in_threadpool(scheduler.executions, name)
        return JSONResponse(
            {**schedule.to_dict(), "executions": [execution_json(e) for e in executions]}
        )

    async def create(request: Request) -> Response:
        body = await _json(request)
        schedule, actor = schedule_from_body(request.path_params["name"], body)
        created = await run_in_threadpool(lambda: scheduler.create(schedule, actor=actor))
        return JSONResponse(created.to_dict())

    async def delete(request: Request) -> Response:
        name = request.path_params["name"]
        actor = request.query_params.get("actor", DEFAULT_ACTOR)
        await run_in_threadpool(lambda: scheduler.delete(name, actor=actor))
        return JSONResponse({"Deleted": name})

    async def run_now(request: Request) -> Response:
        execution = await run_in_threadpool(scheduler.run_now, request.path_params["name"])
        return JSONResponse(execution_json(execution))

    one = "/api/v1/monitoring-schedules/{name}"
    return [
        method_route("/api/v1/monitoring-schedules", GET=list_schedules),
        method_route(one, GET=describe, PUT=create, DELETE=delete),
        method_route(one + "/run", POST=run_now),
    ]


def schedule_from_body(name: str, body: Any) -> tuple[MonitoringSchedule, str]:
    """A schedule from a JSON body; every problem is one line naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object defining the schedule")
    body = dict(body)
    actor = str(body.pop("actor", DEFAULT_ACTOR))
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}"
        )
    for key in _TEXT:
        if not isinstance(body.get(key), str) or not body[key]:
            raise InvalidRequestError(f"{key} is required and must be a non-empty string")
    for key in _OPTIONAL_TEXT:
        if body.get(key) is not None and not isinstance(body[key], str):
            raise InvalidRequestError(f"{key} must be a string, got {body[key]!r}")
    for key in ("window_hours", "threshold"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidRequestError(f"{key} must be a number, got {value!r}")
    columns = body.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
    ):
        raise InvalidRequestError("columns must be a list of column names")
    given = {k: v for k, v in body.items() if v is not None}
    return MonitoringSchedule.from_dict({**given, "name": name}).check(), actor


def execution_json(execution: Execution) -> dict[str, Any]:
    return {**asdict(execution), "report_uri": execution.report_uri}


def _last(executions: list[Execution]) -> dict[str, Any] | None:
    return execution_json(executions[0]) if executions else None
