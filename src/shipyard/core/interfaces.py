"""Protocols that let one layer act on another without importing it.

``pipeline`` hands concrete objects to the layers; the layers only see these shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shipyard.core.types import Invocation, ModelRef, ModelVersionInfo, PutResult, StreamRecord


class Stream(Protocol):
    """A durable, sharded, append-only log with per-consumer-group offsets."""

    name: str

    @property
    def shard_count(self) -> int: ...

    def put_records(self, records: Sequence[tuple[bytes, bytes]]) -> list[PutResult]:
        """Append (partition key, data) pairs; returns only once every record is durable."""
        ...

    def read(self, shard: int, from_sequence: int, max_records: int) -> list[StreamRecord]:
        """Records of one shard with sequence >= ``from_sequence``, in order."""
        ...

    def committed(self, group: str, shard: int) -> int:
        """The next sequence number ``group`` has not yet consumed in ``shard``."""
        ...

    def commit(self, group: str, shard: int, next_sequence: int) -> None:
        """Durably record that ``group`` consumed every record below ``next_sequence``."""
        ...

    def close(self) -> None: ...


class ModelStore(Protocol):
    """Read and move model versions; implemented by the registry."""

    def get_version(self, ref: ModelRef) -> ModelVersionInfo: ...

    def previous_approved(self, ref: ModelRef) -> ModelVersionInfo | None:
        """The newest Approved version of the group older than ``ref``, if any."""
        ...

    def set_alias(
        self, group: str, alias: str, version: int, *, actor: str, reason: str
    ) -> None: ...

    def reject(self, group: str, version: int, *, actor: str, reason: str) -> object:
        """Mark a version Rejected, so that no later rollback returns to it."""
        ...


class TrafficController(Protocol):
    """Change which model versions an endpoint serves; implemented by serve."""

    def serving_versions(self, endpoint: str) -> dict[str, ModelRef]:
        """Variant name -> model version it currently serves."""
        ...

    def route_all(self, endpoint: str, ref: ModelRef, *, actor: str, reason: str) -> None:
        """Serve every request of ``endpoint`` from ``ref``, without dropping any in flight."""
        ...


class MetricsSink(Protocol):
    """Receives one record per served request; implemented by monitor."""

    def record(self, invocation: Invocation) -> None: ...
