"""Model registry: versioned model packages with approval status, aliases and an audit log."""

from __future__ import annotations

from shipyard.registry.registry import (
    APPROVED,
    PENDING,
    REJECTED,
    ModelRegistry,
    ModelVersion,
)

__all__ = ["APPROVED", "PENDING", "REJECTED", "ModelRegistry", "ModelVersion"]
