"""Calls to a Shipyard server's /api/v1, or to the same routes in-process when none answers.

With a `shipyard server` answering (``--url``, or the configured host and port), a command acts
through it, so what it changes takes effect in the process that serves. With none, the same
routes run in-process on the home's database: the change is stored, and a server started later
loads it. A server named with ``--url`` that does not answer is an error (exit code 2).
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import typer

from shipyard.core.config import auth_headers, load_settings
from shipyard.core.errors import (
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    ShipyardError,
    StateError,
    StorageError,
)

if TYPE_CHECKING:
    from starlette.routing import Route

    from shipyard.pipeline import Workspace

RoutesOf = Callable[["Workspace"], "list[Route]"]
URL_OPTION = typer.Option(
    None, "--url", help="Server to act through (default: the configured one if it answers)."
)
ACTOR_OPTION = typer.Option(None, "--actor", help="Who acts, for the audit log (default: $USER).")
_ERRORS: dict[str, type[ShipyardError]] = {
    "ResourceNotFound": NotFoundError,
    "ConflictException": StateError,
    "ServiceUnavailable": StorageError,
}


class _NotShipyard(Exception):
    """Something answered, but not Shipyard's API: the configured port is someone else's."""


def default_actor(actor: str | None) -> str:
    """``actor``, else the user's login name, for the audit log."""
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment (e.g. a bare container)
        return "cli"


def call_api(
    url: str | None,
    method: str,
    path: str,
    routes: RoutesOf,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> Any:
    """One API call (``path`` from ``/api/v1``); raises the ShipyardError the answer names."""
    explicit = url is not None
    if url is None:
        settings = load_settings()
        url = f"http://{settings.host}:{settings.port}"
    try:
        return asyncio.run(_remote(url.rstrip("/"), method, path, body, params))
    except httpx.TransportError as exc:
        if explicit:
            raise ConfigError(f"no Shipyard server answers at {url}: {exc}") from None
    except _NotShipyard as exc:
        if explicit:
            raise InvalidRequestError(str(exc)) from None
    return asyncio.run(_in_process(routes, method, path, body, params))


async def _remote(
    url: str, method: str, path: str, body: Any, params: dict[str, str] | None
) -> Any:
    timeout = httpx.Timeout(120.0, connect=2.0)  # a rollback loads a model
    headers = auth_headers(load_settings().api_key)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, headers=headers) as client:
        return _answer(await client.request(method, path, json=body, params=params))


async def _in_process(
    routes: RoutesOf, method: str, path: str, body: Any, params: dict[str, str] | None
) -> Any:
    from starlette.applications import Starlette

    from shipyard.pipeline import Workspace

    workspace = Workspace.open(load_settings())
    try:
        app = Starlette(routes=routes(workspace))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shipyard") as client:
            answer = _answer(await client.request(method, path, json=body, params=params))
        workspace.actions.flush(timeout_s=30.0)  # let a webhook an action queued go out
        return answer
    finally:
        workspace.close()


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        raise _NotShipyard(
            f"{response.request.url} answered {response.status_code} "
            f"{response.reason_phrase}, not JSON; is it a Shipyard server?"
        ) from None
    if not isinstance(body, dict):
        raise _NotShipyard(f"{response.request.url} answered with an unexpected body")
    if response.status_code >= 400:
        kind = _ERRORS.get(body.get("__type", ""), InvalidRequestError)
        raise kind(str(body.get("message", response.text)))
    return body
