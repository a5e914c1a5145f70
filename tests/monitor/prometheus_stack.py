"""A real Prometheus and Alertmanager for tests: Debian's packages, run on 127.0.0.1 with
their own free ports, configuration and data folders (never as system services).

When the binaries are missing they are installed with ``apt-get install`` (root only: CI runs
as root; elsewhere run ``sudo apt-get install prometheus prometheus-alertmanager`` once).
Anything in the way fails the test with the reason; nothing here skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

PACKAGES = ("prometheus", "prometheus-alertmanager")


def binaries() -> dict[str, str]:
    """Paths of prometheus, promtool and alertmanager, installing the packages if needed."""
    found = _which()
    if found is None:
        _install()
        found = _which()
    if found is None:
        pytest.fail(f"apt-get installed {' '.join(PACKAGES)} but their binaries are not on PATH")
    return found


def _which() -> dict[str, str] | None:
    paths = {
        "prometheus": shutil.which("prometheus"),
        "promtool": shutil.which("promtool"),
        "alertmanager": shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"),
    }
    return None if None in paths.values() else {k: v for k, v in paths.items() if v}


def _install() -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail(
            "Prometheus and Alertmanager are not installed and apt-get is unavailable: "
            f"install the Debian packages {' '.join(PACKAGES)} (or put prometheus, promtool "
            "and alertmanager on PATH)"
        )
    if os.geteuid() != 0:
        pytest.fail(
            "Prometheus and Alertmanager are not installed and installing them needs root: "
            f"run 'sudo apt-get install -y --no-install-recommends {' '.join(PACKAGES)}'"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Wait for another apt-get (another test, a package install) instead of failing at once.
    install = [apt, "-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends"]
    install += PACKAGES
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:  # a stale package index: refresh it once and retry
        subprocess.run(
            [apt, "-o", "DPkg::Lock::Timeout=600", "update"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        pytest.fail(f"apt-get install {' '.join(PACKAGES)} failed: {tail}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process:
    """One server process of the stack, stopped (by its own pid) when the test ends."""

    def __init__(self, name: str, argv: list[str], folder: Path, ready_url: str) -> None:
        self.name = name
        self.log = folder / f"{name}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=folder
        )
        self._wait_ready(ready_url)

    def _wait_ready(self, url: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} not ready at {url} within {timeout_s:.0f} s: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        self._log_file.flush()
        return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log_file.close()


def start_alertmanager(path: str, folder: Path, config: dict[str, Any]) -> tuple[Process, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    argv = [
        path,
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address={address}",
        "--cluster.listen-address=",  # no gossip port: a single, private instance
    ]
    return Process("alertmanager", argv, folder, f"http://{address}/-/ready"), address


def start_prometheus(
    path: str, folder: Path, *, target: str, alertmanager: str, rules: Path
) -> tuple[Process, str]:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "shipyard", "static_configs": [{"targets": [target]}]}],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    argv = [
        path,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={address}",
    ]
    return Process("prometheus", argv, folder, f"http://{address}/-/ready"), address
