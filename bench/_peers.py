"""What the benchmarks share: the git-ignored venv the peers live in, and a median timer."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".bench-venv"
T = TypeVar("T")


def peer_python(*packages: str) -> Path:
    """The Python of .bench-venv (made on first use) with ``packages`` installed: peers never
    enter Shipyard's own dependencies."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    # -qq: errors only. A machine's pip configuration can add a warning per package (e.g. a
    # find-links folder that does not exist), dozens of lines above the figures.
    subprocess.run([str(python), "-m", "pip", "install", "-qq", *packages], check=True)
    return python


def timed(runs: int, fn: Callable[[], T]) -> tuple[float, list[float], T]:
    """The median of ``runs`` (at least one) timings of ``fn``, every timing, the last result."""
    times: list[float] = []
    for _ in range(max(runs, 1)):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result
