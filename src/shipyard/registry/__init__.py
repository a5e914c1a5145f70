"""Model registry: versioned model packages with approval status, aliases and an audit log."""

from __future__ import annotations

from shipyard.registry.actions import ActionOutcome, ModelActions, Redeployment, RegistryActions
from shipyard.registry.api import create_registry_routes
from shipyard.registry.model import (
    APPROVAL_STATUSES,
    APPROVED,
    PENDING,
    PRODUCTION,
    REJECTED,
    AliasMove,
    ApprovalChange,
    HistoryEntry,
    ModelGroup,
    ModelVersion,
    alias_name,
)
from shipyard.registry.registry import ModelRegistry

__all__ = [
    "APPROVAL_STATUSES",
    "APPROVED",
    "PENDING",
    "PRODUCTION",
    "REJECTED",
    "ActionOutcome",
    "AliasMove",
    "ApprovalChange",
    "HistoryEntry",
    "ModelActions",
    "ModelGroup",
    "ModelRegistry",
    "ModelVersion",
    "Redeployment",
    "RegistryActions",
    "alias_name",
    "create_registry_routes",
]
