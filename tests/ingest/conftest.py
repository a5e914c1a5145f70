"""Stream stores of every backend, each test on streams of its own that it removes afterwards.

NATS JetStream (127.0.0.1:4222) and Redis (127.0.0.1:6379) run on every development and CI
machine; a test that cannot reach them fails, it does not skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shipyard.core.config import Settings
from shipyard.ingest import StreamStore, stream_store

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"
BACKENDS = ("embedded", "nats", "redis")


def backend_url(backend: str, prefix: str) -> str:
    """The stream URL of ``backend`` with a key/subject prefix that keeps tests apart."""
    if backend == "embedded":
        return "embedded"
    base = NATS_URL if backend == "nats" else REDIS_URL
    return f"{base}?prefix={prefix}"


@pytest.fixture
def stream_prefix() -> str:
    """Key and subject prefix of this test's streams on the shared NATS and Redis servers."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_store(tmp_path: Path, stream_prefix: str) -> Iterator[Callable[[str], StreamStore]]:
    """``make_store(backend)``: a store on its own prefix; its streams are deleted afterwards.

    Calling it twice with the same backend gives a second store on the same streams, as a
    restarted process would see them.
    """
    opened: list[StreamStore] = []

    def make(backend: str) -> StreamStore:
        settings = Settings(home=tmp_path / "home", stream_url=backend_url(backend, stream_prefix))
        store = stream_store(settings)
        opened.append(store)
        return store

    yield make
    for store in opened:
        for name in store.names():
            try:
                store.delete(name)
            except Exception:  # already removed through another store of the same prefix
                pass
        store.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
