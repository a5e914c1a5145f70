"""Serving: endpoints of weighted variants behind the SageMaker runtime contract."""

from __future__ import annotations

from shipyard.serve.app import create_routes
from shipyard.serve.codecs import decode_events, encode_scores
from shipyard.serve.endpoints import (
    CREATING,
    FAILED,
    IN_SERVICE,
    ROLLING_BACK,
    UPDATING,
    EndpointDescription,
    EndpointService,
    VariantSpec,
)
from shipyard.serve.runtime import EndpointRuntime, InvocationResult, LoadedVariant

__all__ = [
    "CREATING",
    "FAILED",
    "IN_SERVICE",
    "ROLLING_BACK",
    "UPDATING",
    "EndpointDescription",
    "EndpointRuntime",
    "EndpointService",
    "InvocationResult",
    "LoadedVariant",
    "VariantSpec",
    "create_routes",
    "decode_events",
    "encode_scores",
]
