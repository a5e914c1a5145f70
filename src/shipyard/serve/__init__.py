"""Serving: endpoints of weighted variants behind the SageMaker runtime contract, the Open
Inference Protocol v2 and MLflow's scoring JSON, with API keys by role."""

from __future__ import annotations

from shipyard.serve.app import DEFAULT_TIMEOUT_S, create_routes, http_error_handlers
from shipyard.serve.auth import ADMIN, INVOKE, ApiKeys, api_key_middleware
from shipyard.serve.capture import CapturePolicy
from shipyard.serve.codecs import decode_events, encode_scores
from shipyard.serve.endpoint_config import (
    DataCaptureConfig,
    EndpointConfig,
    MultiModelConfig,
    VariantSpec,
    config_from_document,
    config_to_document,
)
from shipyard.serve.endpoints import (
    CREATING,
    FAILED,
    IN_SERVICE,
    ROLLING_BACK,
    UPDATING,
    EndpointDescription,
    EndpointService,
)
from shipyard.serve.errors import InvocationTimeout, TargetError, UnsupportedMediaType
from shipyard.serve.runtime import (
    EndpointRuntime,
    LoadedVariant,
    RowsDecoder,
    Scored,
    Target,
)
from shipyard.serve.sidecar_metrics import SidecarMetricsCollector

__all__ = [
    "ADMIN",
    "CREATING",
    "DEFAULT_TIMEOUT_S",
    "FAILED",
    "INVOKE",
    "IN_SERVICE",
    "ROLLING_BACK",
    "UPDATING",
    "ApiKeys",
    "CapturePolicy",
    "DataCaptureConfig",
    "EndpointConfig",
    "MultiModelConfig",
    "config_from_document",
    "config_to_document",
    "EndpointDescription",
    "EndpointRuntime",
    "EndpointService",
    "InvocationTimeout",
    "LoadedVariant",
    "RowsDecoder",
    "Scored",
    "SidecarMetricsCollector",
    "Target",
    "TargetError",
    "UnsupportedMediaType",
    "VariantSpec",
    "api_key_middleware",
    "create_routes",
    "decode_events",
    "encode_scores",
    "http_error_handlers",
]
