"""SIGTERM stops a multi-worker `shipyard server` in order: workers first, then itself, status 0."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.server_process import free_port, start_server


@pytest.mark.slow
def test_sigterm_stops_the_workers_then_exits_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home")}
    port = free_port()
    log = tmp_path / "server.log"
    server = start_server(env, port, log, own_group=True, workers=2)
    try:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()
        # The workers shared the port: had the supervisor died before stopping them, they
        # would still answer here.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2)
        text = log.read_text()
        assert "leaked semaphore" not in text and "Traceback" not in text, text
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
