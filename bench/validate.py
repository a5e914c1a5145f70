"""Benchmark: validating 5,000,000 fraud rows against ~20 checks, beside the peers.

Measures, in one run and on the same in-memory data (Parquet read excluded):
- hand-written Polars: one `select` of the failure count of every check (the floor);
- Shipyard's Polars engine (`validate_frame`: every check, reason codes and the split into
  valid and quarantined rows);
- pandera's Polars backend (`validate(lazy=True)`), in a separate, git-ignored venv;
- Shipyard's whole job (`run_validation`: stream read, check and split into curated and
  quarantine Parquet, reports and lineage), with its peak memory and CPU time, in a child process;
- Shipyard's Spark engine on the same file (local mode), writing both sides from Spark.
All must agree on the failure count of every check. Goals (issue 4): check pass within 1.2x of
hand-written Polars and no slower than pandera; whole job within 3x of the hand-written pass;
peak memory under 4 GiB.

    .venv/bin/python bench/validate.py [--rows 5000000] [--runs 3] [--no-spark]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
from _peers import peer_python, timed

ROOT = Path(__file__).resolve().parents[1]

REQUIRED = ["event_id", "event_time", "card_id", "amount", "currency", "merchant_id",
            "merchant_category", "country", "channel"]  # fmt: skip
RANGES = {  # column: (min, max)
    "amount": (0, None), "card_age_days": (0, None), "txn_count_1h": (0, None),
    "txn_count_24h": (0, None), "avg_amount_30d": (0, None), "distance_from_home_km": (0, None),
    "device_trust_score": (0, 1), "hour_of_day": (0, 23), "merchant_risk_score": (0, 1),
    "prev_chargebacks": (0, None),
}  # fmt: skip


def domains() -> dict[str, list[str]]:
    from shipyard.scenarios import fraud

    return {
        "currency": list(fraud.CURRENCIES), "merchant_category": list(fraud.MERCHANT_CATEGORIES),
        "country": list(fraud.COUNTRIES), "channel": list(fraud.CHANNELS),
    }  # fmt: skip


def contract_dict() -> dict[str, object]:
    """The bench's contract: the peer baseline's checks (not-null, unique, ranges, domains)."""
    from shipyard.scenarios import fraud

    types = {"string": "string", "double": "float", "int64": "int", "bool": "bool"}
    columns = []
    for field in fraud.EVENT_SCHEMA:
        spec: dict[str, object] = {"name": field.name, "type": types[str(field.type)]}
        spec["required"] = field.name in REQUIRED
        low, high = RANGES.get(field.name, (None, None))
        if low is not None:
            spec["min"] = low
        if high is not None:
            spec["max"] = high
        if field.name in domains():
            spec["allowed"] = domains()[field.name]
        if field.name == "event_id":
            spec["unique"] = True
        columns.append(spec)
    return {"name": "bench", "version": "1", "max_bad_row_share": 1.0, "columns": columns}


def hand_written(frame: pl.DataFrame) -> dict[str, int]:
    exprs = [pl.col(c).is_null().sum().alias(f"{c}:not_null") for c in REQUIRED]
    exprs.append(pl.col("event_id").is_duplicated().sum().alias("event_id:unique"))
    for column, (low, high) in RANGES.items():
        if low is not None:
            exprs.append((pl.col(column) < low).sum().alias(f"{column}:min"))
        if high is not None:
            exprs.append((pl.col(column) > high).sum().alias(f"{column}:max"))
    for column, allowed in domains().items():
        bad = pl.col(column).is_not_null() & ~pl.col(column).is_in(allowed)
        exprs.append(bad.sum().alias(f"{column}:allowed"))
    return {k: int(v) for k, v in frame.select(exprs).row(0, named=True).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args()

    from shipyard.scenarios.fraud import FraudScenario, write_parquet
    from shipyard.validate import Contract

    contract = Contract.from_dict(contract_dict())
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-validate-") as tmp:
        data = Path(tmp) / "fraud.parquet"
        write_parquet(FraudScenario(seed=3, bad_row_rate=0.005), args.rows, data)
        # In a function, so the frame is freed before the whole job runs beside this process.
        floor, floor_runs, counts, ours, ours_runs, ours_counts = _in_memory(
            data, contract, args.runs
        )
        pandera, pandera_counts = _pandera(data, args.runs)
        jobs = _whole_job(data, tmp, args.runs)
        job_s = statistics.median(job["seconds"] for job in jobs)
        peak_mib = max(job["peak_mib"] for job in jobs)
        others = {"whole job": [{k: job["counts"][k] for k in counts} for job in jobs]}
        spark_s = None
        if not args.no_spark:
            try:
                spark_s, spark_counts = _spark(contract, data, tmp)
                others["spark"] = [{k: spark_counts[k] for k in counts}]
            except Exception as exc:  # report it beside the other figures rather than lose them
                print(f"spark engine failed: {type(exc).__name__}: {str(exc)[:300]}")

    if pandera_counts is not None:
        unknown = set(pandera_counts) - set(counts)
        pandera_counts = {k: pandera_counts.get(k, 0) for k in counts} | {
            k: pandera_counts[k] for k in unknown
        }
    agree = (
        counts == ours_counts
        and (pandera_counts is None or pandera_counts == counts)
        and all(found == counts for runs in others.values() for found in runs)
    )
    print(
        f"\nhand-written polars, one select of {len(counts)} counts: {floor:6.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in floor_runs)})"
    )
    print(
        f"shipyard validate_frame (checks + reason codes + split): {ours:6.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in ours_runs)}) = {ours / floor:.2f}x the floor "
        "(goal <= 1.2x)"
    )
    if pandera is not None:
        print(
            f"pandera polars backend, validate(lazy=True): {pandera:6.2f} s -> shipyard is "
            f"{pandera / ours:.2f}x pandera's speed (goal >= 1.0x)"
        )
    job_runs = ", ".join(f"{job['seconds']:.2f}" for job in jobs)
    job_cpu = ", ".join(f"{job['cpu_s']:.2f}" for job in jobs)
    print(
        f"shipyard whole job (read, check, split, write both, reports): {job_s:6.2f} s "
        f"(runs {job_runs}; CPU {job_cpu} s) = {job_s / floor:.2f}x the floor (goal <= 3x), "
        f"peak RSS {peak_mib:,.0f} MiB (goal < 4096)"
    )
    steps = {
        name: statistics.median(job["steps"][name] for job in jobs) for name in jobs[0]["steps"]
    }
    print("  whole job steps (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    if spark_s is not None:
        print(f"shipyard spark engine (local[2], writes both sides from Spark): {spark_s:6.2f} s")
    print(f"every engine (and every whole-job run) agrees on every count: {agree}")
    if not agree:
        for key in sorted(counts):
            print(
                f"  {key}: hand {counts[key]} shipyard {ours_counts.get(key)} "
                f"pandera {(pandera_counts or {}).get(key)} "
                + " ".join(f"{name} {[r.get(key) for r in runs]}" for name, runs in others.items())
            )
    return 0 if agree else 1


def _in_memory(data: Path, contract: Any, runs: int) -> tuple[Any, ...]:
    """The floor and Shipyard's check pass on the same in-memory frame (read excluded)."""
    from shipyard.validate import validate_frame

    frame = pl.read_parquet(data)
    print(f"{frame.height:,} rows, {len(hand_written(frame.head(10)))} checks")
    floor, floor_runs, counts = timed(runs, lambda: hand_written(frame))
    ours, ours_runs, outcome = timed(runs, lambda: validate_frame(contract, frame))
    ours_counts = {k: v for k, v in outcome.check_counts.items() if k in counts}
    return floor, floor_runs, counts, ours, ours_runs, ours_counts


def _pandera(data: Path, runs: int) -> tuple[float | None, dict[str, int] | None]:
    python = peer_python("pandera[polars]", "polars")
    script = textwrap.dedent(
        f"""
        import json, statistics, sys, time
        import pandera.polars as pa
        import polars as pl
        spec = json.loads(sys.argv[2])
        frame = pl.read_parquet(sys.argv[1])
        dtypes = {{"string": pl.String, "float": pl.Float64, "int": pl.Int64, "bool": pl.Boolean}}
        columns = {{}}
        for c in spec["columns"]:
            checks = []
            if "min" in c: checks.append(pa.Check.ge(c["min"], name=c["name"] + ":min"))
            if "max" in c: checks.append(pa.Check.le(c["max"], name=c["name"] + ":max"))
            if "allowed" in c:
                checks.append(pa.Check.isin(c["allowed"], name=c["name"] + ":allowed"))
            columns[c["name"]] = pa.Column(
                dtypes[c["type"]], checks=checks, nullable=not c["required"],
                unique=c.get("unique", False),
            )
        schema = pa.DataFrameSchema(columns)
        times = []
        for _ in range({runs}):
            started = time.perf_counter()
            try:
                schema.validate(frame, lazy=True)
                cases = None
            except pa.errors.SchemaErrors as exc:
                cases = exc.failure_cases
            times.append(time.perf_counter() - started)
        counts = {{}}
        for row in cases.iter_rows(named=True):
            check, column = str(row["check"]), row["column"]
            if check == "not_nullable": key = column + ":not_null"
            elif check == "field_uniqueness": key = column + ":unique"
            elif check.startswith("greater_than_or_equal_to"): key = column + ":min"
            elif check.startswith("less_than_or_equal_to"): key = column + ":max"
            elif check.startswith("isin"): key = column + ":allowed"
            else: key = column + ":" + check
            counts[key] = counts.get(key, 0) + 1
        print(json.dumps({{"seconds": statistics.median(times), "counts": counts}}))
        """
    )
    done = subprocess.run(
        [str(python), "-c", script, str(data), json.dumps(contract_dict())],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"pandera run failed: {done.stderr.strip().splitlines()[-1:]}")
        return None, None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), dict(result["counts"])


def _whole_job(data: Path, tmp: str, runs_wanted: int) -> list[dict[str, Any]]:
    script = textwrap.dedent(
        """
        import json, resource, sys, time
        from pathlib import Path
        from shipyard.core.config import Settings
        from shipyard.pipeline import Workspace
        from shipyard.pipeline.validation import run_validation
        from shipyard.validate import Contract
        ws = Workspace.open(Settings(home=Path(sys.argv[2])))
        contract = Contract.from_dict(json.loads(sys.argv[3]))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        run = run_validation(ws, contract, Path(sys.argv[1]))
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
        # VmHWM, not ru_maxrss: on Linux ru_maxrss carries over the parent's peak through
        # fork and exec, so it would report the bench's own memory.
        status = Path("/proc/self/status").read_text().splitlines()
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
        print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_mib": peak,
                          "steps": run.report["timings_s"], "counts": run.outcome.check_counts}))
        """
    )
    runs = []
    for index in range(runs_wanted):
        done = subprocess.run(
            [sys.executable, "-c", script, str(data), f"{tmp}/home-{index}",
             json.dumps(contract_dict())],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def _spark(contract: object, data: Path, tmp: str) -> tuple[float, dict[str, int]]:
    from shipyard.validate.spark_engine import get_spark, validate_spark_to_parquet

    spark = get_spark()
    times = []
    for run in ("warm-up", "timed"):
        started = time.perf_counter()
        split = validate_spark_to_parquet(
            contract,  # type: ignore[arg-type]
            str(data),
            valid_path=f"{tmp}/spark-{run}/valid",
            quarantine_path=f"{tmp}/spark-{run}/quarantine",
            spark=spark,
        )
        times.append(time.perf_counter() - started)
    spark.stop()
    return times[-1], split.result.check_counts


if __name__ == "__main__":
    sys.exit(main())
