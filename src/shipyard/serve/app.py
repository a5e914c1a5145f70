"""The serving routes on one server: SageMaker runtime, Open Inference Protocol v2 (both read
MLflow's scoring JSON where they take JSON), and the endpoint management API.

Every protocol turns its request into rows and calls :meth:`EndpointService.invoke`; nothing
here knows how or where rows are scored.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ExceptionHandler

from shipyard.serve.api import create_endpoint_api_routes
from shipyard.serve.endpoints import EndpointService
from shipyard.serve.sagemaker import create_sagemaker_routes, sagemaker_error
from shipyard.serve.v2 import create_v2_routes, v2_error

DEFAULT_TIMEOUT_S = 60.0  # SageMaker's limit for a container to answer /invocations


def create_routes(service: EndpointService, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Route]:
    """Every serving route; a request gets ``timeout_s`` for its body, then for its scores."""

    return [
        *create_sagemaker_routes(service, timeout_s=timeout_s),
        *create_v2_routes(service, timeout_s=timeout_s),
        *create_endpoint_api_routes(service),
    ]


def http_error_handlers() -> dict[Any, ExceptionHandler]:
    """JSON instead of Starlette's plain-text 404/405, shaped for the protocol of the path."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            allowed = exc.headers.get("Allow", "") if exc.headers else ""
            message = f"{request.url.path} does not accept {request.method}; it accepts {allowed}"
        else:
            message = str(exc.detail)
        if request.url.path.startswith("/v2"):
            answer = v2_error(exc.status_code, message)
        else:
            code = "UnknownOperationException" if exc.status_code == 404 else "ValidationError"
            answer = sagemaker_error(exc.status_code, code, message)
        answer.headers.update(exc.headers or {})
        return answer

    return {HTTPException: http_error}
