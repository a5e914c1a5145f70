"""The SageMaker runtime contract: InvokeEndpoint, and the container's /ping and /invocations.

Answers are shaped so boto3's ``sagemaker-runtime`` client parses every one of them:

- a request the model refuses (a body it cannot read, a value of the wrong type) or fails on
  is ``ModelError``: HTTP 424 with ``x-amzn-ErrorType: ModelError``, ``OriginalStatusCode``
  (the status the model gave: 400, 415, 500; 0 when it did not answer in time, as SageMaker
  reports a container timeout) and ``OriginalMessage``. boto3 raises ``ModelError`` and does
  not retry it;
- a request SageMaker itself would refuse (unknown endpoint, variant or target model, a
  malformed header) is ``ValidationError`` (400); a body over 6 MiB is 413;
- 5xx is left for real server faults, which boto3 retries.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.core.errors import InvalidRequestError, ModelFault, NotFoundError
from shipyard.core.http import read_body_within
from shipyard.core.names import check_name
from shipyard.serve.capture import Payload
from shipyard.serve.codecs import RequestRows, encode_scores
from shipyard.serve.endpoints import EndpointService
from shipyard.serve.errors import TargetError, UnsupportedMediaType
from shipyard.serve.runtime import Target

MAX_BODY_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's Body limit, 6 MiB
VARIANT_HEADER = "X-Amzn-SageMaker-Target-Variant"
MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
INVOKED_HEADER = "X-Amzn-Invoked-Production-Variant"
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
MAX_ATTRIBUTES_CHARS = 1024
MAX_TARGET_MODEL_CHARS = 1024


def sagemaker_error(status: int, code: str, message: str, **members: Any) -> Response:
    """An error boto3 parses: the code in ``x-amzn-ErrorType``, members in the JSON body."""
    body = orjson.dumps({"Message": message, "message": message, **members})
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def model_error(endpoint: str, original_status: int, original_message: str) -> Response:
    """SageMaker's ``ModelError`` (424) for what the model answered with ``original_status``."""
    side = "client" if 400 <= original_status < 500 else "server"
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


def validation_error(message: str) -> Response:
    return sagemaker_error(400, "ValidationError", message)


def create_sagemaker_routes(service: EndpointService, *, timeout_s: float) -> list[Route]:
    """GET /ping, POST /invocations and POST /endpoints/{name}/invocations."""

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    async def invoke_named(request: Request) -> Response:
        return await invoke(service, request.path_params["name"], request, timeout_s)

    async def invoke_default(request: Request) -> Response:
        serving = service.serving
        chosen = request.query_params.get("endpoint") or None
        if chosen is None and len(serving) != 1:
            listed = ", ".join(serving) or "none"
            return validation_error(
                "POST /invocations needs exactly one endpoint in service or ?endpoint=NAME; "
                f"in service: {listed}"
            )
        return await invoke(service, chosen or serving[0], request, timeout_s)

    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", invoke_default, methods=["POST"]),
        Route("/endpoints/{name}/invocations", invoke_named, methods=["POST"]),
    ]


async def invoke(
    service: EndpointService, name: str, request: Request, timeout_s: float
) -> Response:
    """One InvokeEndpoint call: headers and body to rows, scores to the response."""
    try:
        target = _target(request)
        attributes = _custom_attributes(request)
        service.check_serving(name)  # an unknown endpoint is refused before its body is read
    except (InvalidRequestError, NotFoundError) as exc:
        return validation_error(str(exc))
    try:
        # asyncio's own timeout: a few microseconds, where an anyio cancel scope costs tens
        async with asyncio.timeout(timeout_s):
            body = await read_body_within(request, MAX_BODY_BYTES)
    except TimeoutError:
        return sagemaker_error(
            408,
            "ValidationError",
            f"the request body did not arrive within {timeout_s:g} s (SHIPYARD_REQUEST_TIMEOUT_S)",
        )
    if body is None:
        return sagemaker_error(
            413,
            "ValidationError",
            f"the body is larger than InvokeEndpoint's limit of {MAX_BODY_BYTES} bytes; "
            "send fewer events per request",
        )
    rows = RequestRows(body, request.headers.get("content-type"))
    try:
        arrived = Payload(
            body,
            request.headers.get("content-type"),
            request.headers.get("accept"),
            request.headers.get(INFERENCE_ID_HEADER),
        )
        scored = await service.invoke(name, rows, target, timeout_s=timeout_s, payload=arrived)
    except (TargetError, NotFoundError) as exc:
        return validation_error(str(exc))
    except UnsupportedMediaType as exc:
        return model_error(name, 415, str(exc))
    except InvalidRequestError as exc:
        return model_error(name, 400, str(exc))
    except ModelFault as exc:  # InvocationTimeout included: OriginalStatusCode 0
        return model_error(name, exc.original_status, str(exc))
    payload, media = encode_scores(scored.scores, request.headers.get("accept"), scored.output_name)
    headers = {
        INVOKED_HEADER: scored.variant,
        "X-Shipyard-Model-Version": str(scored.ref),
        "X-Shipyard-Unseen-Categories": str(scored.unseen_categories),
    }
    if attributes is not None:
        headers[ATTRIBUTES_HEADER] = attributes
    return Response(payload, media_type=media, headers=headers)


def _target(request: Request) -> Target:
    variant = request.headers.get(VARIANT_HEADER)
    if variant is not None:
        try:
            check_name("variant", variant)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"{VARIANT_HEADER}: {exc}") from None
    model = request.headers.get(MODEL_HEADER)
    if model is not None and not 1 <= len(model) <= MAX_TARGET_MODEL_CHARS:
        raise InvalidRequestError(
            f"{MODEL_HEADER} must hold 1-{MAX_TARGET_MODEL_CHARS} characters, got {len(model)}"
        )
    return Target(variant=variant, model=model)


def _custom_attributes(request: Request) -> str | None:
    """The opaque attributes SageMaker forwards verbatim; echoed back on the response."""
    value = request.headers.get(ATTRIBUTES_HEADER)
    if value is None:
        return None
    if len(value) > MAX_ATTRIBUTES_CHARS or not all(" " <= c <= "~" for c in value):
        raise InvalidRequestError(
            f"{ATTRIBUTES_HEADER} must be at most {MAX_ATTRIBUTES_CHARS} visible US-ASCII "
            f"characters, got {len(value)} characters"
        )
    return value
