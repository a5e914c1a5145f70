"""Request errors every serving protocol shares, before each protocol shapes them.

    InvalidRequestError (core)     the body cannot be read as rows: the model "refuses" it
    ├── UnsupportedMediaType       ... because its content type is not one Shipyard reads
    └── TargetError                a header or name targets a variant or model that is not there
    ModelFault (core)              the model failed on the rows
    └── InvocationTimeout          ... or did not answer within the per-request timeout

The SageMaker routes answer the ``InvalidRequestError`` family with ``ModelError`` (424, the
container's 4xx), except ``TargetError``, which SageMaker itself checks: ``ValidationError``
(400). The Open Inference Protocol answers them with 400/404/415 and ``{"error": ...}``.
"""

from __future__ import annotations

from shipyard.core.errors import InvalidRequestError, ModelFault


class UnsupportedMediaType(InvalidRequestError):
    """The request's content type is not one the endpoint reads (HTTP 415 from the model)."""


class TargetError(InvalidRequestError):
    """A target variant or model named by the request does not exist on the endpoint."""


class InvocationTimeout(ModelFault):
    """The model did not answer within the per-request timeout."""

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        super().__init__(
            f"the model of endpoint {endpoint!r} did not answer within {timeout_s:g} s "
            "(SHIPYARD_REQUEST_TIMEOUT_S); send fewer rows per request or raise the timeout",
            original_status=0,
        )
        self.timeout_s = timeout_s
