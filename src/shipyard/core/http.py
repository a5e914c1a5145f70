"""Small HTTP helpers shared by the servers' routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.core.errors import (
    IntegrityError,
    NotFoundError,
    ShipyardError,
    StateError,
    StorageError,
)

Handler = Callable[[Request], Awaitable[Response]]


async def read_body_within(request: Request, limit_bytes: int) -> bytes | None:
    """The request body, or None once it exceeds ``limit_bytes`` (the rest is not buffered).

    A declared Content-Length over the limit is refused before reading; a chunked body is
    counted as it arrives, so neither can grow past the limit in memory.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def api_error(exc: ShipyardError) -> Response:
    """The /api/v1 JSON answer to an error: always 4xx (503 when storage fails), never a 500."""
    status, code = 400, "ValidationException"
    if isinstance(exc, NotFoundError):
        status, code = 404, "ResourceNotFound"
    elif isinstance(exc, StateError | IntegrityError):
        status, code = 409, "ConflictException"
    elif isinstance(exc, StorageError):
        status, code = 503, "ServiceUnavailable"
    return JSONResponse({"__type": code, "message": str(exc)}, status_code=status)


def method_route(path: str, **handlers: Handler) -> Route:
    """One route whose handlers are keyed by HTTP method; errors answered by ``api_error``,
    a method it lacks by a JSON 405 naming the ones it has."""

    async def dispatch(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(handlers))
            return JSONResponse(
                {"__type": "MethodNotAllowed", "message": f"{path} accepts {allowed} only"},
                status_code=405,
                headers={"Allow": allowed},
            )
        try:
            return await handler(request)
        except ShipyardError as exc:
            return api_error(exc)

    return Route(path, dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
