"""One NATS connection driven by its own event loop thread, callable from any thread.

nats-py is asyncio-only while the stream protocol is synchronous and called from the
server's thread pool. Each ``NatsLink`` runs one event loop in a daemon thread; ``call``
submits a coroutine to it and waits, so any thread may use the connection at once.
JetStream API calls go through ``api``, which turns a JetStream error reply into a
``JetStreamError`` (a ``StorageError`` that keeps the server's ``err_code``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import nats
import nats.errors
import orjson
from nats.aio.client import Client

from shipyard.core.errors import ConfigError, ShipyardError, StateError, StorageError

T = TypeVar("T")

DEFAULT_PREFIX = "shipyard"
CONNECT_TIMEOUT_S = 2.0
API_TIMEOUT_S = 10.0
# Outer bound on any call, beyond the inner timeouts, so a wedged loop cannot hang a caller.
CALL_TIMEOUT_S = 120.0

# JetStream API error codes this backend tells apart (nats-server's errors.json).
STREAM_NOT_FOUND = 10059
STREAM_NAME_IN_USE = 10058
CONSUMER_NOT_FOUND = 10014
NO_MESSAGE_FOUND = 10037

_PREFIX = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_log = logging.getLogger("shipyard.ingest.nats_stream")


class JetStreamError(StorageError):
    """JetStream refused an API request; ``err_code`` is the server's error code."""

    def __init__(self, message: str, err_code: int) -> None:
        super().__init__(message)
        self.err_code = err_code


@dataclass(frozen=True)
class NatsTarget:
    """A parsed ``nats://`` stream URL: where to connect, how to show it, and the prefix."""

    server: str  # what nats-py connects to: the URL without the query, credentials kept
    shown: str  # scheme://host:port, for messages: never the credentials
    prefix: str

    @classmethod
    def parse(cls, url: str) -> NatsTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ConfigError(
                f"SHIPYARD_STREAM_URL={url!r} is not a NATS URL; use nats://HOST:PORT"
            )
        try:
            port = parts.port or 4222
        except ValueError:
            raise ConfigError(f"SHIPYARD_STREAM_URL has a bad port: {url!r}") from None
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        prefix = params.pop("prefix", DEFAULT_PREFIX)
        if params:
            raise ConfigError(
                f"SHIPYARD_STREAM_URL has unknown parameters {sorted(params)}; "
                "a nats:// stream URL takes only ?prefix=NAME"
            )
        if not _PREFIX.match(prefix):
            raise ConfigError(
                f"the NATS prefix {prefix!r} is not usable: use 1-32 letters, digits or '-'"
            )
        server = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return cls(server, f"{parts.scheme}://{parts.hostname}:{port}", prefix)


class NatsLink:
    """A NATS connection with its own event loop thread; ``close`` stops both."""

    def __init__(self, target: NatsTarget, label: str) -> None:
        self.target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"shipyard-nats-{label}", daemon=True
        )
        self._lock = threading.Lock()
        self._closed = False
        self._is_connected = False
        self._last_error: Exception | None = None
        self._thread.start()
        try:
            self.nc: Client = self.call(self._connect(label))
        except BaseException:
            self._stop_loop()
            raise

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload)

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Run ``coro`` on the link's loop and wait for it; NATS failures become StorageError."""
        if self._closed:
            coro.close()
            raise StateError(f"the connection to NATS at {self.target.shown} is closed")
        return self._run_on_loop(coro, timeout_s)

    def _run_on_loop(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("NatsLink.call from its own loop thread would deadlock")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop closed under us
            coro.close()
            raise StateError(f"the connection to NATS at {self.target.shown} is closed") from None
        try:
            return future.result(timeout_s)
        except ShipyardError:
            raise
        except concurrent.futures.CancelledError:  # close() cancelled it midway
            raise StateError(
                f"the connection to NATS at {self.target.shown} closed during the call"
            ) from None
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            # TimeoutError is also what a NATS request inside coro raises: tell them apart.
            if not future.done():
                future.cancel()
                raise StorageError(
                    f"NATS at {self.target.shown} did not answer within {timeout_s:g} s"
                ) from None
            raise StorageError(
                f"NATS at {self.target.shown} failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def api(self, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JetStream API request (``$JS.API.{subject}``); its reply, or a JetStreamError."""
        payload = b"" if body is None else orjson.dumps(body)
        try:
            msg = await self.nc.request(f"$JS.API.{subject}", payload, timeout=API_TIMEOUT_S)
        except nats.errors.NoRespondersError:
            raise StorageError(
                f"the NATS server at {self.target.shown} does not answer JetStream requests; "
                "start it with JetStream enabled (nats-server -js)"
            ) from None
        except nats.errors.TimeoutError:
            raise StorageError(
                f"JetStream at {self.target.shown} did not answer {subject.split('.')[0]} "
                f"within {API_TIMEOUT_S:g} s"
            ) from None
        reply: dict[str, Any] = orjson.loads(msg.data)
        error = reply.get("error")
        if error:
            raise JetStreamError(
                f"JetStream at {self.target.shown} refused {subject}: "
                f"{error.get('description', error)}",
                int(error.get("err_code", 0)),
            )
        return reply

    def close(self) -> None:
        """Close the connection (flushing what is buffered) and stop the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if threading.current_thread() is self._thread:
            # Reached from a finalizer running on the loop itself: close without waiting.
            self._loop.create_task(self._shutdown()).add_done_callback(lambda _: self._loop.stop())
            return
        try:
            self._run_on_loop(self._shutdown(), API_TIMEOUT_S)
        except ShipyardError:
            _log.warning("closing the NATS connection to %s failed", self.target.shown)
        finally:
            self._stop_loop()

    async def _connect(self, label: str) -> Client:
        nc = Client()
        try:
            # Two quick attempts, so a server that is down is reported in about a second.
            await nc.connect(
                servers=[self.target.server],
                name=f"shipyard {label}",
                connect_timeout=int(CONNECT_TIMEOUT_S),
                allow_reconnect=True,
                max_reconnect_attempts=1,
                reconnect_time_wait=1,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnect,
                reconnected_cb=self._on_reconnect,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            await nc.close()
            cause = self._last_error or exc  # NoServersError alone does not say why
            raise StorageError(
                f"cannot connect to the NATS server at {self.target.shown} "
                f"({type(cause).__name__}: {cause}); start it or fix SHIPYARD_STREAM_URL"
            ) from None
        self._is_connected = True
        # Once connected, ride out server restarts: calls fail by timeout meanwhile.
        nc.options["max_reconnect_attempts"] = -1
        return nc

    async def _shutdown(self) -> None:
        await self.nc.close()
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=API_TIMEOUT_S)

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc
        # Failed first attempts end in one StorageError; later ones are worth a warning.
        level = logging.WARNING if self._is_connected else logging.DEBUG
        _log.log(level, "NATS at %s: %s: %s", self.target.shown, type(exc).__name__, exc)

    async def _on_disconnect(self) -> None:
        _log.info("disconnected from NATS at %s", self.target.shown)

    async def _on_reconnect(self) -> None:
        _log.info("reconnected to NATS at %s", self.target.shown)
