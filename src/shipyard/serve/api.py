"""The endpoint management API under /api/v1, with SageMaker's field names where they exist.

    POST   /api/v1/endpoint-configs           a CreateEndpointConfig document
    GET    /api/v1/endpoint-configs[/{name}]
    POST   /api/v1/endpoints                  {"EndpointName", "EndpointConfigName"}
    GET    /api/v1/endpoints[/{name}]         DescribeEndpoint (+ shadow, capture, multi-model)
    PUT    /api/v1/endpoints/{name}           {"EndpointConfigName", "DeploymentConfig"?}:
                                              UpdateEndpoint (blue/green with a DeploymentConfig)
    DELETE /api/v1/endpoints/{name}

Errors are JSON ``{"__type": code, "message": ...}`` (SageMaker's control-plane shape):
400 ValidationException, 404 ResourceNotFound, 409 ConflictException.
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
    ShipyardError,
)
from shipyard.core.http import method_route, read_body_within
from shipyard.serve.deployment_config import deployment_from_document
from shipyard.serve.endpoint_config import config_from_document, config_to_document
from shipyard.serve.endpoints import EndpointDescription, EndpointService

MAX_BODY_BYTES = 1024 * 1024


def create_endpoint_api_routes(service: EndpointService) -> list[Route]:
    """The management routes above, acting on ``service``."""

    async def create_config(request: Request) -> Response:
        config = config_from_document(await _json(request))
        await run_in_threadpool(service.create_endpoint_config, config, actor=_actor(request))
        return JSONResponse(config_to_document(config), status_code=201)

    async def list_configs(request: Request) -> Response:
        configs = await run_in_threadpool(service.list_endpoint_configs)
        return JSONResponse({"EndpointConfigs": [config_to_document(c) for c in configs]})

    async def describe_config(request: Request) -> Response:
        config = service.describe_endpoint_config(request.path_params["name"])
        return JSONResponse(config_to_document(config))

    async def create_endpoint(request: Request) -> Response:
        body = await _json(request)
        name, config_name = _field(body, "EndpointName"), _field(body, "EndpointConfigName")
        service.describe_endpoint_config(config_name)
        try:
            await run_in_threadpool(
                service.create_endpoint, name, config_name=config_name, actor=_actor(request)
            )
        except ShipyardError:
            if name not in {d.name for d in service.list_endpoints()}:
                raise
            # Created, then Failed to load: the description carries the reason.
        return JSONResponse(describe_json(service, service.describe(name)), status_code=201)

    async def list_endpoints(request: Request) -> Response:
        found = await run_in_threadpool(service.list_endpoints)
        return JSONResponse({"Endpoints": [describe_json(service, d) for d in found]})

    async def describe_endpoint(request: Request) -> Response:
        description = service.describe(request.path_params["name"])
        return JSONResponse(describe_json(service, description))

    async def update_endpoint(request: Request) -> Response:
        name = request.path_params["name"]
        body = await _json(request)
        config_name = _field(body, "EndpointConfigName")
        service.describe(name)
        config = service.describe_endpoint_config(config_name)
        if body.get("RetainDeploymentConfig"):
            raise InvalidRequestError(
                "RetainDeploymentConfig is not supported; pass the DeploymentConfig again"
            )
        raw = body.get("DeploymentConfig")
        deployment = (
            None
            if raw is None
            else deployment_from_document(
                raw, instances=sum(v.instance_count for v in config.variants)
            )
        )
        await run_in_threadpool(
            lambda: service.update_endpoint(
                name,
                config_name=config_name,
                actor=_actor(request),
                reason=str(body.get("Reason", "")),
                deployment=deployment,
            )
        )
        return JSONResponse(describe_json(service, service.describe(name)))

    async def delete_endpoint(request: Request) -> Response:
        name = request.path_params["name"]
        await run_in_threadpool(service.delete_endpoint, name, actor=_actor(request))
        return JSONResponse({"EndpointName": name, "Deleted": True})

    return [
        method_route("/api/v1/endpoint-configs", GET=list_configs, POST=create_config),
        method_route("/api/v1/endpoint-configs/{name}", GET=describe_config),
        method_route("/api/v1/endpoints", GET=list_endpoints, POST=create_endpoint),
        method_route(
            "/api/v1/endpoints/{name}",
            GET=describe_endpoint,
            PUT=update_endpoint,
            DELETE=delete_endpoint,
        ),
    ]


def describe_json(service: EndpointService, description: EndpointDescription) -> dict[str, Any]:
    """DescribeEndpoint's shape, plus what this server holds loaded for the endpoint."""
    config = description.config
    document = {} if config is None else config_to_document(config)
    signatures: dict[str, dict[str, str]] = {}
    if description.name in service.serving and config and config.multi_model is None:
        loaded = service.runtime(description.name).variants
        signatures = {v.name: v.model.input_types for v in loaded}
    body: dict[str, Any] = {
        "EndpointName": description.name,
        "EndpointStatus": description.status,
        "EndpointConfigName": description.config_name,
        "FailureReason": description.failure_reason,
        "CreationTime": _iso(description.created_at),
        "LastModifiedTime": _iso(description.updated_at),
        "ProductionVariants": [
            {
                "VariantName": v.name,
                "ModelPackage": str(v.model),
                "CurrentWeight": v.weight,
                "CurrentInstanceCount": v.instance_count,
                "InputSignature": signatures.get(v.name),
            }
            for v in description.variants
        ],
    }
    progress = None if config is None else service.deployments.progress(description.name)
    if progress is not None:
        body["PendingDeploymentSummary"] = progress.to_document()
    sidecars = service.sidecars(description.name)
    shadow = None if sidecars is None else sidecars.shadow
    if config is not None and config.shadow is not None:
        stats = None if shadow is None else shadow.stats
        body["ShadowProductionVariants"] = [
            {
                "VariantName": config.shadow.name,
                "ModelPackage": str(config.shadow.model),
                "SamplingPercentage": config.shadow_sampling_percentage,
                **(
                    {}
                    if stats is None
                    else {
                        "Sent": stats.sent,
                        "Succeeded": stats.succeeded,
                        "Errors": stats.errors,
                        "Dropped": stats.dropped,
                        "LastError": stats.last_error,
                    }
                ),
            }
        ]
    if "DataCaptureConfig" in document:
        capture = document["DataCaptureConfig"]
        body["DataCaptureConfig"] = {
            **capture,
            "CaptureStatus": "Started" if capture["EnableCapture"] else "Stopped",
            "CurrentSamplingPercentage": capture["InitialSamplingPercentage"],
            "Variants": {
                variant: {"Captured": s.captured, "Dropped": s.dropped, "Files": s.files}
                for (endpoint, variant), s in sorted(service.capture.stats.items())
                if endpoint == description.name
            },
        }
    if "MultiModelConfig" in document:
        multi = None if sidecars is None else sidecars.multi
        state = None if multi is None else service.worker_caches.combined(description.name, multi)
        body["MultiModelConfig"] = {
            **document["MultiModelConfig"],
            **({} if state is None else state.to_document()),
        }
    return body


async def _json(request: Request) -> dict[str, Any]:
    body = await read_body_within(request, MAX_BODY_BYTES)
    if body is None:
        raise InvalidRequestError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return parsed


def _field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(f"{key} is required and must be a string")
    return value


def _actor(request: Request) -> str:
    return request.headers.get("x-shipyard-actor", "api")


def _iso(moment: datetime) -> str:
    # SQLite hands back naive datetimes; every time Shipyard stores is UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
