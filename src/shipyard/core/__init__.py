"""The small core every layer builds on: settings, errors, shared types and interfaces."""

from __future__ import annotations

from shipyard.core.config import Settings, load_settings
from shipyard.core.errors import (
    ConfigError,
    ContractError,
    DataError,
    IntegrityError,
    InvalidRequestError,
    ModelFault,
    NotFittedError,
    NotFoundError,
    ShipyardError,
    StageFailed,
    StateError,
    StorageError,
)

__all__ = [
    "ConfigError",
    "ContractError",
    "DataError",
    "IntegrityError",
    "InvalidRequestError",
    "ModelFault",
    "NotFittedError",
    "NotFoundError",
    "Settings",
    "ShipyardError",
    "StageFailed",
    "StateError",
    "StorageError",
    "load_settings",
]
