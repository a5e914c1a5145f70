"""Benchmark: drift of 1,000,000 current rows against a 1,000,000-row reference, beside Evidently.

The data is the fraud scenario: the reference is one day of events, the current data the next
day, from which a few columns drift (amount x3, device_trust_score x0.8, channel and
merchant_risk_score tilted), so some features drift and the rest do not. 17 features: 11
numerical, 6 categorical (text and booleans), declared the same way to both tools.

Measures, in one run, on the same in-memory data (Parquet read excluded for both):
- Shipyard's ``detect_drift`` (fit the reference, score the current data);
- Evidently's ``Report([DataDriftPreset()])`` including building its two ``Dataset``s from pandas,
  in the git-ignored .bench-venv (evidently 0.7.x, pandas < 3), in a child process.
Then compares every feature: same method, same verdict, statistics within 1 % (goal: >= 10x
faster than Evidently, identical verdicts).

    .venv/bin/python bench/monitor.py [--rows 1000000] [--runs 3] [--evidently-runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from _peers import peer_python, timed

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY = "evidently>=0.7,<0.8"
NOT_FEATURES = ("event_id", "event_time", "card_id", "merchant_id")
DRIFT = {"amount": 3.0, "device_trust_score": 0.8, "channel": 4.0, "merchant_risk_score": 1.5}
# A Tuesday: the reference and the current day are both weekdays, so is_weekend does not drift.
START = datetime(2026, 11, 3, tzinfo=UTC)
TOLERANCE = 0.01


def make_data(folder: Path, rows: int, seed: int) -> tuple[Path, Path]:
    """``rows`` events of one day as the reference, ``rows`` of the next (drifted) as current."""
    from shipyard.scenarios.fraud import FraudScenario, write_parquet

    scenario = FraudScenario(
        seed=seed,
        events_per_day=rows,
        start=START,
        drift=DRIFT,
        drift_start=START + timedelta(days=1),
    )
    both = folder / "both.parquet"
    write_parquet(scenario, 2 * rows, both)
    frame = pl.read_parquet(both)
    reference, current = folder / "reference.parquet", folder / "current.parquet"
    frame.slice(0, rows).write_parquet(reference)
    frame.slice(rows, rows).write_parquet(current)
    return reference, current


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--evidently-runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    from shipyard.monitor import detect_drift

    with tempfile.TemporaryDirectory(prefix="shipyard-bench-monitor-") as tmp:
        started = time.perf_counter()
        reference_path, current_path = make_data(Path(tmp), args.rows, args.seed)
        print(f"generated 2 x {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        reference, current = pl.read_parquet(reference_path), pl.read_parquet(current_path)
        features = [c for c in reference.columns if c not in NOT_FEATURES]
        numerical = [c for c in features if reference.schema[c].is_numeric()]
        categorical = [c for c in features if c not in numerical]
        print(
            f"{len(features)} features: {len(numerical)} numerical, {len(categorical)} categorical"
        )

        ours_s, ours_runs, report = timed(
            args.runs, lambda: detect_drift(reference, current, columns=features)
        )
        with_read_s, _, _ = timed(
            1, lambda: detect_drift(reference_path, current_path, columns=features)
        )
        theirs = _evidently(reference_path, current_path, numerical, categorical, args)

    print(
        f"\nshipyard detect_drift: {ours_s:6.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in ours_runs)})"
        f"; {with_read_s:.2f} s including reading both Parquet files"
    )
    if theirs is None:
        return 1
    ratio = theirs["seconds"] / ours_s
    print(
        f"evidently {theirs['version']} DataDriftPreset: {theirs['seconds']:6.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in theirs['times'])}) -> shipyard is "
        f"{ratio:.1f}x faster (goal >= 10x)"
    )
    return _compare(report, theirs)


def _compare(report: Any, theirs: dict[str, Any]) -> int:
    print(
        f"\n{'feature':24s} {'method (both, or shipyard / evidently)':40s} {'shipyard':>12s} "
        f"{'evidently':>12s} {'rel diff':>9s}  verdicts"
    )
    same_verdicts, worst = True, 0.0
    for column in report.columns:
        method, threshold, value, drifted = theirs["columns"][column.name]
        same_method = method == column.method_label and threshold == column.threshold
        difference = abs(column.statistic - value) / max(abs(value), 1e-12)
        if same_method:
            worst = max(worst, difference)
        same_verdicts &= drifted == column.drift_detected
        verdicts = f"{_word(column.drift_detected)} / {_word(drifted)}"
        shown = column.method_label if same_method else f"{column.method_label} / {method}"
        print(
            f"{column.name:24s} {shown:40s} "
            f"{column.statistic:12.6g} {value:12.6g} {difference:9.1e}  {verdicts}"
        )
    print(
        f"dataset drift: shipyard {report.dataset_drift} "
        f"({len(report.drifted)}/{len(report.columns)} features), evidently "
        f"{theirs['drifted_share'] >= report.drift_share} ({theirs['drifted_count']:g} features)"
    )
    print(
        f"same verdict on every feature: {same_verdicts}; largest relative statistic "
        f"difference where the method is the same: {worst:.1e} (goal <= {TOLERANCE:.0%})"
    )
    return 0 if same_verdicts and worst <= TOLERANCE else 1


def _word(drifted: bool) -> str:
    return "drift" if drifted else "ok"


def _evidently(
    reference: Path, current: Path, numerical: list[str], categorical: list[str], args: Any
) -> dict[str, Any] | None:
    # pandas 3 breaks evidently 0.7's import (peer-baselines.md), hence the pin.
    python = peer_python(EVIDENTLY, "pandas<3", "pyarrow")
    script = textwrap.dedent(
        """
        import json, statistics, sys, time
        import pandas as pd
        import evidently
        from evidently import Dataset, DataDefinition, Report
        from evidently.presets import DataDriftPreset
        numerical, categorical = json.loads(sys.argv[3]), json.loads(sys.argv[4])
        columns = numerical + categorical
        reference = pd.read_parquet(sys.argv[1], columns=columns)
        current = pd.read_parquet(sys.argv[2], columns=columns)
        definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
        times = []
        for _ in range(int(sys.argv[5])):
            started = time.perf_counter()
            ref = Dataset.from_pandas(reference, data_definition=definition)
            cur = Dataset.from_pandas(current, data_definition=definition)
            snapshot = Report([DataDriftPreset()]).run(cur, ref)
            times.append(time.perf_counter() - started)
        result = {"version": evidently.__version__, "seconds": statistics.median(times),
                  "times": times, "columns": {}}
        for metric in snapshot.dict()["metrics"]:
            config = metric["config"]
            if config["type"].endswith("DriftedColumnsCount"):
                result["drifted_count"] = metric["value"]["count"]
                result["drifted_share"] = metric["value"]["share"]
            elif config["type"].endswith("ValueDrift"):
                method, threshold, value = config["method"], config["threshold"], metric["value"]
                # Evidently's rule: p-values drift below the threshold (K-S at or below it),
                # distances at or above it.
                if "p_value" in method:
                    drifted = value <= threshold if method.startswith("K-S") else value < threshold
                else:
                    drifted = value >= threshold
                result["columns"][config["column"]] = [method, threshold, value, bool(drifted)]
        print(json.dumps(result))
        """
    )
    done = subprocess.run(
        [str(python), "-c", script, str(reference), str(current), json.dumps(numerical),
         json.dumps(categorical), str(args.evidently_runs)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"evidently run failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    flagged = sum(1 for _, _, _, drifted in result["columns"].values() if drifted)
    if flagged != result["drifted_count"]:
        print(
            f"note: evidently counts {result['drifted_count']} drifted, its columns say {flagged}"
        )
    return result


if __name__ == "__main__":
    sys.exit(main())
