"""The streams a server process owns: created, opened on first use, described, closed."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shipyard.core.errors import NotFoundError, StateError
from shipyard.ingest.backend import StreamBackend, StreamSpec, StreamStatus, StreamStore, check_name


@dataclass(frozen=True)
class StreamDescription:
    status: StreamStatus
    spec: StreamSpec


class StreamHub:
    """Opens each stream of one backend once per process and keeps it for the process's life."""

    def __init__(self, store: StreamStore) -> None:
        self.store = store
        self._open: dict[str, StreamBackend] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def backend(self) -> str:
        return self.store.backend

    def create(self, name: str, spec: StreamSpec) -> StreamDescription:
        check_name("stream", name)
        with self._lock:
            self._check_open()
            self._open[name] = self.store.create(name, spec)
        return self.describe(name)

    def get(self, name: str) -> StreamBackend:
        """The open stream ``name``; opens it on first use, NotFoundError if it does not exist."""
        with self._lock:
            self._check_open()
            stream = self._open.get(name)
            if stream is None:
                try:
                    stream = self.store.open(name)
                except NotFoundError:
                    known = ", ".join(self.store.names()) or "none"
                    raise NotFoundError(f"stream {name!r} not found; streams: {known}") from None
                self._open[name] = stream
            return stream

    def spec(self, name: str) -> StreamSpec:
        """The stream's spec: read on every PutRecords request, so kept by the open stream."""
        return self.get(name).spec

    def describe(self, name: str) -> StreamDescription:
        stream = self.get(name)
        return StreamDescription(stream.describe(), stream.spec)

    def names(self) -> list[str]:
        return self.store.names()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for stream in self._open.values():
                stream.close()
            self._open.clear()
            self.store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StateError("the server is shutting down; its streams are closed")
