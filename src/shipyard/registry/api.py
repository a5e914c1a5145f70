"""The registry over HTTP, under /api/v1/models on `shipyard server`.

    GET  /api/v1/models                                      groups
    GET  /api/v1/models/{group}                              a group and its versions
    GET  /api/v1/models/{group}/history                      the group's audit log
    GET  /api/v1/models/{group}/versions/{version|alias}     one version
    GET  /api/v1/models/{group}/versions/{version}/history   one version's audit log
    POST /api/v1/models/{group}/versions/{version}/approve   {"actor", "reason", "deploy",
                                                              "skip_gate"}
    POST /api/v1/models/{group}/versions/{version}/reject    {"actor", "reason"}
    POST /api/v1/models/{group}/versions/{version}/promote   {"alias" | "stage", "actor",
                                                              "reason", "deploy"}

Field names follow SageMaker's (``ModelPackageGroupName``, ``ModelApprovalStatus``). Errors
are JSON ``{"__type", "message"}``: 400 ValidationException for bad input, 404
ResourceNotFound, 409 ConflictException for a change the current state does not allow,
405 for a wrong method, 503 when the database or the object store fails.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.core.errors import (
    InvalidRequestError,
    NotFoundError,
)
from shipyard.core.http import method_route, read_body_within
from shipyard.core.names import check_name
from shipyard.registry.actions import ActionOutcome, ModelActions
from shipyard.registry.model import (
    HistoryEntry,
    ModelGroup,
    ModelVersion,
    alias_name,
    as_utc,
    parse_version_number,
)
from shipyard.registry.registry import ModelRegistry

PREFIX = "/api/v1/models"
MAX_BODY_BYTES = 64 * 1024
DEFAULT_ACTOR = "api"


def create_registry_routes(registry: ModelRegistry, actions: ModelActions) -> list[Route]:
    """The routes above; changes go through ``actions`` so they can trigger deployments."""

    async def list_groups(request: Request) -> Response:
        groups = await run_in_threadpool(registry.list_groups)
        return JSONResponse({"ModelPackageGroups": [group_json(g) for g in groups]})

    async def describe_group(request: Request) -> Response:
        group = _group(request)
        found = await run_in_threadpool(registry.get_group, group)
        versions = await run_in_threadpool(registry.list_versions, group)
        return JSONResponse({**group_json(found), "Versions": [version_json(v) for v in versions]})

    async def group_history(request: Request) -> Response:
        entries = await run_in_threadpool(registry.history, _group(request))
        return JSONResponse({"History": [history_json(e) for e in entries]})

    async def describe_version(request: Request) -> Response:
        group, key = _group(request), request.path_params["version"]
        if key.isdigit():
            found = await run_in_threadpool(registry.get, group, parse_version_number(key))
        else:
            found = await run_in_threadpool(registry.get_by_alias, group, key)
        return JSONResponse(version_json(found))

    async def version_history(request: Request) -> Response:
        entries = await run_in_threadpool(registry.history, _group(request), _version(request))
        return JSONResponse({"History": [history_json(e) for e in entries]})

    async def approve(request: Request) -> Response:
        body = await _body(request, deploy=str, skip_gate=bool)
        outcome = await run_in_threadpool(
            lambda: actions.approve(
                _group(request),
                _version(request),
                deploy_to=body.get("deploy"),
                skip_gate=body.get("skip_gate", False),
                **_note(body),
            )
        )
        return JSONResponse(outcome_json(outcome))

    async def reject(request: Request) -> Response:
        body = await _body(request)
        outcome = await run_in_threadpool(
            lambda: actions.reject(_group(request), _version(request), **_note(body))
        )
        return JSONResponse(outcome_json(outcome))

    async def promote(request: Request) -> Response:
        body = await _body(request, alias=str, stage=str, deploy=str)
        alias = alias_name(body.get("alias"), stage=body.get("stage"))
        outcome = await run_in_threadpool(
            lambda: actions.promote(
                _group(request),
                _version(request),
                alias,
                deploy_to=body.get("deploy"),
                **_note(body),
            )  # fmt: skip
        )
        return JSONResponse(outcome_json(outcome))

    async def unknown(request: Request) -> Response:
        raise NotFoundError(f"no registry route {request.method} {request.url.path}; see {PREFIX}")

    version_path = PREFIX + "/{group}/versions/{version}"
    return [
        method_route(PREFIX, GET=list_groups),
        method_route(PREFIX + "/{group}", GET=describe_group),
        method_route(PREFIX + "/{group}/history", GET=group_history),
        method_route(version_path, GET=describe_version),
        method_route(version_path + "/history", GET=version_history),
        method_route(version_path + "/approve", POST=approve),
        method_route(version_path + "/reject", POST=reject),
        method_route(version_path + "/promote", POST=promote),
        # Anything else under the prefix (a name with a slash in it, a typo) gets JSON too.
        method_route(
            PREFIX + "/{rest:path}", GET=unknown, POST=unknown, PUT=unknown, DELETE=unknown
        ),
    ]


# JSON shapes, shared with the CLI --------------------------------------------------------


def group_json(group: ModelGroup) -> dict[str, Any]:
    return {
        "ModelPackageGroupName": group.name,
        "CreationTime": _iso(group.created_at),
        "VersionCount": group.version_count,
        "LatestVersion": group.latest_version,
        "Aliases": dict(sorted(group.aliases.items())),
    }


def version_json(version: ModelVersion) -> dict[str, Any]:
    return {
        "ModelPackageGroupName": version.group,
        "ModelPackageVersion": version.version,
        "ModelRef": str(version.ref),
        "ModelApprovalStatus": version.approval_status,
        "Aliases": list(version.aliases),
        "ArtifactUri": version.artifact_uri,
        "Sha256": version.sha256,
        "Framework": version.framework,
        "FrameworkVersion": version.framework_version,
        "InputSignature": version.signature,
        "ModelMetrics": version.metrics,
        "Parameters": version.params,
        "Lineage": version.lineage,
        "CreationTime": _iso(version.created_at),
    }


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "Time": _iso(entry.at),
        "Actor": entry.actor,
        "Action": entry.action,
        "Subject": entry.subject,
        "From": entry.from_state,
        "To": entry.to_state,
        "Reason": entry.reason,
        "Details": entry.details,
    }


def outcome_json(outcome: ActionOutcome) -> dict[str, Any]:
    return {
        "ModelVersion": version_json(outcome.version),
        "PreviousApprovalStatus": outcome.from_status,
        "Changed": outcome.changed,
        "AliasMoves": [
            {"Alias": m.alias, "From": m.from_version, "To": m.to_version}
            for m in outcome.alias_moves
        ],
        "Redeployments": [
            {
                "EndpointName": r.endpoint,
                "From": [str(ref) for ref in r.from_refs],
                "To": str(r.to_ref),
            }
            for r in outcome.redeployments
        ],
    }


# request parsing ---------------------------------------------------------------------------


def _group(request: Request) -> str:
    return check_name("model package group", request.path_params["group"])


def _version(request: Request) -> int:
    return parse_version_number(request.path_params["version"])


async def _body(request: Request, **fields: type) -> dict[str, Any]:
    """The JSON object body; ``actor`` and ``reason`` are always allowed, plus ``fields``."""
    raw = await read_body_within(request, MAX_BODY_BYTES)
    if raw is None:
        raise InvalidRequestError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    allowed: dict[str, type] = {"actor": str, "reason": str, **fields}
    for key, value in body.items():
        if key not in allowed:
            raise InvalidRequestError(
                f"unknown field {key!r}; this call takes {', '.join(sorted(allowed))}"
            )
        if value is not None and not isinstance(value, allowed[key]):
            raise InvalidRequestError(
                f"field {key!r} must be a {allowed[key].__name__}, got {type(value).__name__}"
            )
    return {k: v for k, v in body.items() if v is not None}


def _note(body: dict[str, Any]) -> dict[str, str]:
    return {"actor": body.get("actor", DEFAULT_ACTOR), "reason": body.get("reason", "")}


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat()
