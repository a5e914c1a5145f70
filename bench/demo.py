"""Benchmark: `shipyard demo` at its default size (1,000,000 events) must finish in < 180 s.

Runs the real command in a fresh, temporary SHIPYARD_HOME, as a user would, and prints the
per-stage times the demo reports plus the wall time of the whole command.

    .venv/bin/python bench/demo.py [--events 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 180.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    shipyard = Path(sys.executable).with_name("shipyard")
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as home:
        env = {**os.environ, "SHIPYARD_HOME": home, "COLUMNS": "160"}
        started = time.perf_counter()
        result = subprocess.run(
            [str(shipyard), "demo", "--events", str(args.events), "--seed", str(args.seed)],
            env=env,
            text=True,
            capture_output=True,
        )
        wall = time.perf_counter() - started
    print(result.stdout)
    if result.returncode != 0:
        print(result.stderr, file=sys.stderr)
        print(f"demo failed with exit code {result.returncode}")
        return 1
    verdict = "meets" if wall < GOAL_S else "MISSES"
    print(
        f"shipyard demo --events {args.events:,}: {wall:.1f} s wall on {os.cpu_count()} cores "
        f"({verdict} the {GOAL_S:.0f} s goal; {wall / GOAL_S:.2f}x of the budget)"
    )
    return 0 if wall < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
