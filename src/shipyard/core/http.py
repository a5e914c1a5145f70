"""Small HTTP helpers shared by the servers' routes."""

from __future__ import annotations

from starlette.requests import Request


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
