"""API keys with roles, checked before any route runs.

``SHIPYARD_API_KEYS`` holds ``KEY:ROLE`` pairs separated by commas, or ``@PATH`` to a file with
one ``KEY:ROLE`` per line (``#`` starts a comment). Roles:

=========  ==================================================================================
(none)     ``GET /ping``, ``/v2/health/live``, ``/v2/health/ready``: probes need no key
invoke     invocations (``/invocations``, ``/endpoints/*/invocations``, ``/v2``,
           ``/v2/models/...``) and ``POST /streams/*/records``
admin      everything above, plus every other call: ``/api/v1/*`` (reads and writes), ``/metrics``
=========  ==================================================================================

A key is sent as ``Authorization: Bearer KEY`` or ``X-Api-Key: KEY``. boto3 signs with SigV4
and cannot send either, so its access key id is read as the key (the ``Credential=KEY/...``
part of its ``Authorization`` header; the secret and signature are not checked). No key is
answered 401, a key of too small a role 403. With no keys configured every call is open.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.core.errors import ConfigError
from shipyard.serve.sagemaker import sagemaker_error
from shipyard.serve.v2 import v2_error

INVOKE = "invoke"
ADMIN = "admin"
ROLES = (INVOKE, ADMIN)
SETTING = "SHIPYARD_API_KEYS"
# No "/" (it would end a SigV4 access key id), ":" or "," (they separate the setting's parts).
_KEY = re.compile(r"[A-Za-z0-9._~+=-]{16,256}")
_OPEN = frozenset({"/ping", "/v2/health/live", "/v2/health/ready"})
_INVOKE_POSTS = re.compile(r"/invocations|/endpoints/[^/]+/invocations|/streams/[^/]+/records")
_SIGV4_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass(frozen=True)
class ApiKeys:
    """Role per key, held as sha256 digests so no key sits in memory in the clear."""

    roles: dict[str, str]

    @classmethod
    def parse(cls, spec: str | None) -> ApiKeys | None:
        """The keys of a ``SHIPYARD_API_KEYS`` value, or None when it configures none."""
        if spec is None or not spec.strip():
            return None
        if spec.startswith("@"):
            path = Path(spec[1:]).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{SETTING}={spec}: cannot read {path}: {exc}") from None
            entries = [line.split("#", 1)[0].strip() for line in text.splitlines()]
            where = str(path)
        else:
            entries = [part.strip() for part in spec.split(",")]
            where = SETTING
        roles: dict[str, str] = {}
        for number, entry in enumerate(entries, start=1):
            if not entry:
                continue
            key, _, role = (part.strip() for part in entry.partition(":"))
            if role not in ROLES or not _KEY.fullmatch(key):
                raise ConfigError(
                    f"{where} entry {number} is not KEY:ROLE with ROLE invoke or admin and "
                    "KEY 16-256 characters of letters, digits and . _ ~ + = -"
                )
            digest = _digest(key)
            if digest in roles:
                raise ConfigError(f"{where} entry {number} repeats a key listed before it")
            roles[digest] = role
        if not roles:
            raise ConfigError(f"{SETTING} is set but lists no keys; unset it to leave serving open")
        return cls(roles)

    def role_of(self, key: str) -> str | None:
        return self.roles.get(_digest(key))


def required_role(method: str, path: str) -> str | None:
    """The role a call needs; None for health probes."""
    if method in ("GET", "HEAD") and path in _OPEN:
        return None
    if method == "POST" and _INVOKE_POSTS.fullmatch(path):
        return INVOKE
    if path == "/v2" or path.startswith("/v2/models/"):
        return INVOKE
    return ADMIN


def presented_key(headers: Headers) -> str | None:
    """The key from ``X-Api-Key``, a Bearer token, or a SigV4 access key id."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, rest = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip() or None
    if scheme == "AWS4-HMAC-SHA256":
        found = _SIGV4_CREDENTIAL.search(rest)
        return found.group(1) if found else None
    return None


class ApiKeyMiddleware:
    """Refuses a call without a key of the role it needs, before the route reads its body."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        needed = required_role(method, path)
        if needed is None:
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        role = None if key is None else self.keys.role_of(key)
        if role == ADMIN or role == needed:
            await self.app(scope, receive, send)
            return
        if key is None:
            refusal = _refuse(
                path,
                401,
                "MissingAuthenticationTokenException",
                f"{method} {path} needs an API key with role {needed}: send "
                "'Authorization: Bearer KEY' or 'X-Api-Key: KEY' (boto3: the key as access key id)",
            )
        elif role is None:
            refusal = _refuse(
                path,
                401,
                "UnrecognizedClientException",
                "the API key sent is not one of "
                f"{SETTING}; {method} {path} needs a key with role {needed}",
            )
        else:
            refusal = _refuse(
                path,
                403,
                "AccessDeniedException",
                f"the API key sent has role {role}; {method} {path} needs role {needed}",
            )
        await refusal(scope, receive, send)


def api_key_middleware(spec: str | None) -> list[Middleware]:
    """The middleware for ``SHIPYARD_API_KEYS``: none at all when no keys are configured."""
    keys = ApiKeys.parse(spec)
    return [] if keys is None else [Middleware(ApiKeyMiddleware, keys=keys)]


def _refuse(path: str, status: int, code: str, message: str) -> Response:
    answer = (
        v2_error(status, message)
        if path.startswith("/v2")
        else sagemaker_error(status, code, message)
    )
    if status == 401:
        answer.headers["WWW-Authenticate"] = 'Bearer realm="shipyard"'
    return answer


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
