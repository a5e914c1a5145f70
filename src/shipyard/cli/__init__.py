"""Command-line interface: `shipyard --help` lists every command."""

from __future__ import annotations

from shipyard.cli.main import app, main

__all__ = ["app", "main"]
