"""The streams a server process owns: created, opened on first use, described, closed."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import orjson

from shipyard.core.errors import NotFoundError, StateError
from shipyard.ingest._shardlog import atomic_write
from shipyard.ingest.stream import EmbeddedStream, StreamStatus, check_name

_SETTINGS = "ingest.json"
DEFAULT_PARTITION_KEY_FIELD = "card_id"


@dataclass(frozen=True)
class StreamSettings:
    """How the HTTP API treats a stream: NDJSON partition key and retention."""

    partition_key_field: str = DEFAULT_PARTITION_KEY_FIELD
    retention_hours: float = 24.0


@dataclass(frozen=True)
class StreamDescription:
    status: StreamStatus
    settings: StreamSettings


class StreamHub:
    """Opens each embedded stream once per process and keeps it for the process's life."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[str, EmbeddedStream] = {}
        # Read on every PutRecords request; cached so the hot path does no file I/O.
        self._settings: dict[str, StreamSettings] = {}
        self._lock = threading.Lock()
        self._closed = False

    def create(self, name: str, shards: int, settings: StreamSettings) -> StreamDescription:
        check_name("stream", name)
        with self._lock:
            if self._closed:
                raise StateError("the server is shutting down; its streams are closed")
            if name in EmbeddedStream.known(self.root):
                raise StateError(f"stream {name!r} already exists")
            stream = EmbeddedStream.create(self.root, name, shards)
            atomic_write(
                self.root / name / _SETTINGS,
                orjson.dumps(
                    {
                        "partition_key_field": settings.partition_key_field,
                        "retention_hours": settings.retention_hours,
                    }
                ),
            )
            self._open[name] = stream
        return self.describe(name)

    def get(self, name: str) -> EmbeddedStream:
        """The open stream ``name``; opens it on first use, NotFoundError if it does not exist."""
        with self._lock:
            if self._closed:
                raise StateError("the server is shutting down; its streams are closed")
            stream = self._open.get(name)
            if stream is None:
                known = EmbeddedStream.known(self.root)
                if name not in known:
                    raise NotFoundError(
                        f"stream {name!r} not found; streams: {', '.join(known) or 'none'}"
                    )
                stream = self._open[name] = EmbeddedStream.open(self.root, name)
            return stream

    def settings(self, name: str) -> StreamSettings:
        """The stream's API settings; read from disk once, as they never change."""
        cached = self._settings.get(name)
        if cached is not None:
            return cached
        path = self.root / name / _SETTINGS
        settings = StreamSettings()
        if path.exists():
            data = orjson.loads(path.read_bytes())
            settings = StreamSettings(data["partition_key_field"], float(data["retention_hours"]))
        self._settings[name] = settings
        return settings

    def describe(self, name: str) -> StreamDescription:
        return StreamDescription(self.get(name).describe(), self.settings(name))

    def names(self) -> list[str]:
        return EmbeddedStream.known(self.root)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for stream in self._open.values():
                stream.close()
            self._open.clear()
