"""Benchmark: the fraud generator must make at least 1,000,000 events/s into Arrow.

Times N events into Arrow tables, into one Parquet file (zstd) and into JSON lines on disk,
and prints events/s for each: the median of --runs runs, after one small warm-up call that
builds the card and merchant pools.

    .venv/bin/python bench/generate.py [--events 1000000] [--runs 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from shipyard.scenarios.fraud import FraudScenario, write_jsonl, write_parquet

GOAL_EVENTS_PER_S = 1_000_000


def _median_seconds(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bad-rows", type=float, default=0.01)
    args = parser.parse_args()
    n_events: int = args.events
    scenario = FraudScenario(seed=args.seed, bad_row_rate=args.bad_rows)
    scenario.generate(1)  # warm-up: pools and sampling tables are built once per seed

    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as folder:
        parquet, jsonl = Path(folder) / "events.parquet", Path(folder) / "events.jsonl"

        def to_jsonl() -> None:
            with jsonl.open("wb") as stream:
                write_jsonl(scenario, n_events, stream)

        cases: dict[str, Callable[[], object]] = {
            "arrow": lambda: list(scenario.iter_chunks(n_events)),
            "parquet": lambda: write_parquet(scenario, n_events, parquet),
            "jsonl": to_jsonl,
        }
        print(f"fraud generator, {n_events:,} events, median of {args.runs} runs")
        rates = {}
        for name, run in cases.items():
            seconds = _median_seconds(run, args.runs)
            rates[name] = n_events / seconds
            size = {"parquet": parquet, "jsonl": jsonl}.get(name)
            note = f"  ({size.stat().st_size / 1e6:,.1f} MB)" if size is not None else ""
            print(f"  {name:8s} {seconds:7.3f} s  {rates[name]:>12,.0f} events/s{note}")

    is_fast = rates["arrow"] >= GOAL_EVENTS_PER_S
    print(f"goal: >= {GOAL_EVENTS_PER_S:,} events/s into Arrow: {'met' if is_fast else 'MISSED'}")
    return 0 if is_fast else 1


if __name__ == "__main__":
    sys.exit(main())
