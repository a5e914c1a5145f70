"""Shipyard's exception tree.

Every error Shipyard raises on purpose is a ``ShipyardError``; anything else is a bug.

    ShipyardError
    ├── ConfigError            a SHIPYARD_ setting is missing, malformed or unusable
    ├── StorageError           the object store or metadata database failed
    │   └── IntegrityError     stored bytes do not match their recorded sha256
    ├── NotFoundError          a named thing (dataset, model, endpoint, stream) does not exist
    ├── StateError             an action is not allowed in the current state
    ├── ContractError          a data contract is malformed
    ├── DataError              data does not fit what the caller promised (columns, types)
    ├── InvalidRequestError    a request to a server is malformed (becomes HTTP 4xx)
    ├── ModelFault             the model refused or failed on a request (SageMaker's ModelError)
    ├── NotFittedError         a component was used before ``fit``
    └── StageFailed            a pipeline stage did not reach its goal
"""

from __future__ import annotations


class ShipyardError(Exception):
    """Base class of every error Shipyard raises deliberately."""


class ConfigError(ShipyardError):
    """A setting is missing, malformed or points at something unusable."""


class StorageError(ShipyardError):
    """The object store or metadata database could not do what was asked."""


class IntegrityError(StorageError):
    """Stored bytes do not match the sha256 recorded for them."""


class NotFoundError(ShipyardError):
    """A named dataset, model version, endpoint or stream does not exist."""


class StateError(ShipyardError):
    """The action is not allowed in the object's current state."""


class ContractError(ShipyardError):
    """A data contract is malformed."""


class DataError(ShipyardError):
    """Data does not have the shape the caller promised."""


class InvalidRequestError(ShipyardError):
    """A request is malformed; servers answer it with a 4xx naming the problem."""


class ModelFault(ShipyardError):
    """The model refused or failed on a request.

    Serving maps this to SageMaker's ``ModelError`` (HTTP 424) so clients do not retry it.
    """

    def __init__(self, message: str, original_status: int = 500) -> None:
        super().__init__(message)
        self.original_status = original_status


class NotFittedError(ShipyardError):
    """A component was used before ``fit`` was called."""


class StageFailed(ShipyardError):
    """A pipeline stage ran but did not reach its goal."""
