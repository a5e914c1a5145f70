"""Wiring: the only place that knows the order of the steps."""

from __future__ import annotations

from shipyard.pipeline.server import BackgroundServer, build_app, listen_socket, serve_forever
from shipyard.pipeline.workspace import Workspace, error_rate_alarm

__all__ = [
    "BackgroundServer",
    "Workspace",
    "build_app",
    "error_rate_alarm",
    "listen_socket",
    "serve_forever",
]
