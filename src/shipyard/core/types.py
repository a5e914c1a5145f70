"""Small frozen value objects that cross layer boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSONDict = dict[str, Any]


@dataclass(frozen=True)
class ModelRef:
    """One version of a model package group, e.g. ``fraud-detector`` version 2."""

    group: str
    version: int

    def __str__(self) -> str:
        return f"{self.group}@{self.version}"

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """The inverse of ``str()``: ``"fraud-detector@2"`` -> ModelRef("fraud-detector", 2)."""
        group, _, version = text.rpartition("@")
        if not group or not version.isdigit():
            raise ValueError(f"{text!r} is not GROUP@VERSION")
        return cls(group, int(version))


@dataclass(frozen=True)
class ModelVersionInfo:
    """What a layer outside the registry needs to know about a model version."""

    ref: ModelRef
    artifact_uri: str
    sha256: str
    approval_status: str
    metrics: JSONDict = field(default_factory=dict)


@dataclass(frozen=True)
class StreamRecord:
    """A record read back from a stream shard."""

    shard: int
    sequence: int
    data: bytes
    arrival_ms: int


@dataclass(frozen=True)
class PutResult:
    """Where an acknowledged record landed: it is durable once this exists."""

    shard: int
    sequence: int


@dataclass(frozen=True)
class Invocation:
    """One served request, as metrics see it."""

    endpoint: str
    variant: str
    status: int
    model_latency_us: float
    overhead_latency_us: float
    at_s: float
    is_model_error: bool = False
    unseen_categories: int = 0
    model_version: str = ""  # str(ModelRef) of the version that answered
