"""A real `shipyard server` subprocess for the tests that kill, restart or talk to one."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    env: dict[str, str],
    port: int,
    log: Path,
    *,
    own_group: bool = False,
    workers: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `shipyard server` on ``port`` (output appended to ``log``) and wait for /ping.

    ``own_group`` puts it in a new process group, so a test can kill it with its workers.
    ``workers`` defaults to the server's own default (one inference worker per core).
    """
    command = [SHIPYARD, "server", "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    with log.open("ab") as out:
        server = subprocess.Popen(
            command, env=env, stdout=out, stderr=out, start_new_session=own_group
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the server did not start within 60 s"
        time.sleep(0.1)
