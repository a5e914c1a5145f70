"""Where a Redis stream store lives: the server URL, the key prefix, the key names, a client.

``SHIPYARD_STREAM_URL=redis://[user:password@]HOST:PORT/DB[?prefix=P&socket_timeout=S...]``:
``prefix`` is Shipyard's (default ``shipyard``); every other query option goes to redis-py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shipyard.core.errors import ConfigError, StorageError

DEFAULT_PREFIX = "shipyard"
CONNECT_TIMEOUT_S = 3.0
# Bounds a call to a Redis that accepted the connection and then hangs; scripts take ms.
SOCKET_TIMEOUT_S = 60.0


class RedisTarget:
    """The Redis server and key prefix of one store; prints its URL without the password."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [value for key, value in query if key == "prefix"]
        self.prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        self.shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        if not self.prefix or any(c in self.prefix for c in "{}*?[] \t\n"):
            raise ConfigError(
                f"SHIPYARD_STREAM_URL {self.shown!r} has prefix={self.prefix!r}: use a "
                "non-empty key prefix without spaces or any of {}*?[]"
            )
        rest = urlencode([(key, value) for key, value in query if key != "prefix"])
        self._connect_url = urlunsplit(parts._replace(query=rest))

    @property
    def registry(self) -> str:
        return f"{self.prefix}:streams"

    def meta(self, name: str) -> str:
        return f"{self.prefix}:meta:{name}"

    def log(self, name: str, shard: int) -> str:
        return f"{self.prefix}:stream:{name}:{shard}"

    def connect(self) -> redis.Redis:
        """A client with its own pool: bounded connect wait, no silent retry of writes."""
        try:
            return redis.Redis.from_url(
                self._connect_url,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as exc:
            raise ConfigError(f"SHIPYARD_STREAM_URL {self.shown!r} is not usable: {exc}") from None

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn redis-py's errors into a StorageError naming the server and what failed.

        Script errors (``ResponseError``) pass through: the caller knows what they mean.
        """
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StorageError(
                f"cannot {action}: Redis at {self.shown} did not answer ({exc}); check that it "
                "runs and that SHIPYARD_STREAM_URL points at it"
            ) from None
        except redis.ResponseError:
            raise
        except redis.RedisError as exc:
            raise StorageError(f"cannot {action} on Redis at {self.shown}: {exc}") from None
