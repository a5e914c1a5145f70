"""HTTP routes of the SageMaker runtime contract, shaped so boto3 parses every answer.

Errors follow SageMaker: a request the model refuses or fails on is ``ModelError`` (424, with
``OriginalStatusCode`` and ``OriginalMessage``), so boto3 raises ``ModelError`` and does not
retry; an unknown endpoint or variant is ``ValidationError`` (400).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.core.errors import InvalidRequestError, ModelFault, NotFoundError
from shipyard.core.http import read_body_within
from shipyard.serve.endpoints import EndpointDescription, EndpointService

MAX_BODY_BYTES = 6 * 1024 * 1024
VARIANT_HEADER = "X-Amzn-SageMaker-Target-Variant"
INVOKED_HEADER = "X-Amzn-Invoked-Production-Variant"


def sagemaker_error(status: int, code: str, message: str, **members: Any) -> Response:
    body = orjson.dumps({"Message": message, "message": message, **members})
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def model_error(endpoint: str, original_status: int, original_message: str) -> Response:
    side = "client" if original_status < 500 else "server"
    message = (
        f"Received {side} error ({original_status}) from primary with message "
        f'"{original_message}". See the endpoint history of {endpoint} for more information.'
    )
    return sagemaker_error(
        424,
        "ModelError",
        message,
        OriginalStatusCode=original_status,
        OriginalMessage=original_message,
        LogStreamArn=f"shipyard:endpoint/{endpoint}",
    )


def create_routes(service: EndpointService) -> list[Route]:
    """The runtime routes: /ping, /invocations and /endpoints/{name}/invocations."""

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    async def invoke_named(request: Request) -> Response:
        return await _invoke(service, request.path_params["name"], request)

    async def invoke_default(request: Request) -> Response:
        serving = service.serving
        chosen = request.query_params.get("endpoint") or None
        if chosen is None and len(serving) != 1:
            listed = ", ".join(serving) or "none"
            return sagemaker_error(
                400,
                "ValidationError",
                "POST /invocations needs exactly one endpoint in service or ?endpoint=NAME; "
                f"in service: {listed}",
            )
        return await _invoke(service, chosen or serving[0], request)

    async def list_endpoints(request: Request) -> Response:
        return JSONResponse({"Endpoints": [_describe(d) for d in service.list_endpoints()]})

    async def describe_endpoint(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            description = service.describe(name)
        except NotFoundError as exc:
            return sagemaker_error(400, "ValidationException", str(exc))
        body = _describe(description)
        if name in service.serving:
            # The order CSV requests must follow, per variant actually loaded here.
            signatures = {v.name: v.model.input_types for v in service.runtime(name).variants}
            for variant in body["ProductionVariants"]:
                variant["InputSignature"] = signatures.get(variant["VariantName"])
        return JSONResponse(body)

    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", invoke_default, methods=["POST"]),
        Route("/endpoints/{name}/invocations", invoke_named, methods=["POST"]),
        Route("/api/v1/endpoints", list_endpoints, methods=["GET"]),
        Route("/api/v1/endpoints/{name}", describe_endpoint, methods=["GET"]),
    ]


async def _invoke(service: EndpointService, name: str, request: Request) -> Response:
    try:
        runtime = service.runtime(name)
    except NotFoundError as exc:
        return sagemaker_error(400, "ValidationError", str(exc))
    body = await read_body_within(request, MAX_BODY_BYTES)
    if body is None:
        return sagemaker_error(
            413, "ValidationError", f"the body is larger than the limit of {MAX_BODY_BYTES} bytes"
        )
    try:
        result = runtime.invoke(
            body,
            request.headers.get("content-type"),
            request.headers.get("accept"),
            request.headers.get(VARIANT_HEADER),
        )
    except LookupError as exc:
        return sagemaker_error(400, "ValidationError", str(exc.args[0]))
    except InvalidRequestError as exc:
        return model_error(runtime.name, 400, str(exc))
    except ModelFault as exc:
        return model_error(runtime.name, exc.original_status, str(exc))
    return Response(
        result.body,
        media_type=result.content_type,
        headers={
            INVOKED_HEADER: result.variant,
            "X-Shipyard-Model-Version": str(result.ref),
            "X-Shipyard-Unseen-Categories": str(result.unseen_categories),
        },
    )


def _describe(description: EndpointDescription) -> dict[str, Any]:
    return {
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
            }
            for v in description.variants
        ],
    }


def _iso(moment: datetime) -> str:
    # SQLite hands back naive datetimes; every time Shipyard stores is UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
