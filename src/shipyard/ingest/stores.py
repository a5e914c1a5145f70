"""Pick the stream backend ``SHIPYARD_STREAM_URL`` names, and open one stream on it."""

from __future__ import annotations

from urllib.parse import urlsplit

from shipyard.core.config import EMBEDDED, Settings
from shipyard.core.errors import ConfigError, NotFoundError
from shipyard.ingest.backend import StreamBackend, StreamSpec, StreamStore
from shipyard.ingest.stream import EmbeddedStore

_SCHEMES = {"nats": "NATS JetStream", "tls": "NATS JetStream", "redis": "Redis Streams",
            "rediss": "Redis Streams"}  # fmt: skip


def stream_store(settings: Settings) -> StreamStore:
    """The store of the backend ``settings.stream_url`` selects: embedded, nats:// or redis://."""
    url = settings.stream_url
    if url == EMBEDDED:
        settings.ensure_home()
        return EmbeddedStore(settings.stream_path)
    scheme = urlsplit(url).scheme
    if scheme in ("nats", "tls"):
        from shipyard.ingest.nats_stream import NatsStore

        return NatsStore(url)
    if scheme in ("redis", "rediss"):
        from shipyard.ingest.redis_stream import RedisStore

        return RedisStore(url)
    raise ConfigError(
        f"SHIPYARD_STREAM_URL={url!r} is not a stream backend Shipyard has; use {EMBEDDED!r}, "
        "nats://HOST:PORT (NATS JetStream) or redis://HOST:PORT/DB (Redis Streams)"
    )


def open_stream(
    settings: Settings, name: str, shards: int = 2, create: bool = True
) -> StreamBackend:
    """The stream ``name`` on the configured backend; created with ``shards`` if ``create``.

    The stream owns what it needs (files, a connection); closing it releases them.
    """
    store = stream_store(settings)
    try:
        try:
            return store.open(name)
        except NotFoundError:
            if not create:
                raise
            return store.create(name, StreamSpec(shards=shards))
    finally:
        store.close()


def backend_name(url: str) -> str:
    """A human name for the backend of a stream URL, for status lines."""
    if url == EMBEDDED:
        return "embedded"
    return _SCHEMES.get(urlsplit(url).scheme, url)
