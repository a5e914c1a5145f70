"""The command line as a user meets it: help, version, and one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHIPYARD, *args], capture_output=True, text=True, timeout=60, env=env)


def test_help_lists_every_command_with_one_line() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("demo", "server", "generate", "version"):
        assert command in result.stdout


def test_version() -> None:
    result = _run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("shipyard ")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nonsense"], "No such command"),
        (["demo", "--frobnicate"], "No such option"),
        (["demo", "--events", "ten"], "valid integer"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SHIPYARD_PORT", "eighty", "SHIPYARD_PORT='eighty'"),
        ("SHIPYARD_DATABASE_URL", "postgresql+psycopg://x@127.0.0.1:1/none", "cannot reach"),
        ("SHIPYARD_DATABASE_URL", "nosuchdb://x", "is not usable"),
        ("SHIPYARD_HOME", "/proc/shipyard", "cannot be created"),
    ],
)
def test_bad_settings_are_one_line(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    env = {"PATH": "/usr/bin:/bin", "SHIPYARD_HOME": str(tmp_path / "home"), variable: value}
    # Without --port, so that the port setting itself is read; every case exits before binding.
    result = _run("server", env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "SHIPYARD_HOME": str(tmp_path / "home")}
        result = _run("server", "--port", str(port), env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"shipyard: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
