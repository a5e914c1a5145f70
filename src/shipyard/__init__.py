"""Shipyard: run a machine-learning model in production end to end, on your own machine."""

from __future__ import annotations

from shipyard._version import __version__
from shipyard.core import Settings, ShipyardError, load_settings

__all__ = ["Settings", "ShipyardError", "__version__", "load_settings"]
