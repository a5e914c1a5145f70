"""Benchmark: register-and-lookup pairs per second on SQLite, beside MLflow's model registry.

One pair is: register a new version of a model package group (metrics, parameters,
signature and lineage included, with its audit event) and read it back by number. Measured
in one run on the same machine:
- Shipyard's ModelRegistry on a fresh SQLite file (WAL);
- MLflow's registry (MlflowClient.create_model_version + get_model_version) on a fresh
  SQLite file, in a separate, git-ignored venv (.bench-venv).
Goal (issue 5): at least 500 pairs/s for Shipyard on SQLite.

    .venv/bin/python bench/registry.py [--pairs 2000] [--peer-pairs 300] [--runs 3] [--no-peer]
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

from _peers import peer_python

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 50
GOAL_PAIRS_S = 500


def shipyard_pairs_per_s(folder: Path, pairs: int) -> float:
    from shipyard.registry import ModelRegistry
    from shipyard.storage import MetadataStore

    registry = ModelRegistry(MetadataStore(f"sqlite:///{folder / 'shipyard.db'}"))
    signature = {"inputs": [{"name": f"f{i}", "type": "float"} for i in range(17)]}

    def pair(i: int) -> None:
        version = registry.register(
            "fraud-detector",
            artifact_uri=f"file:///models/fraud-detector/{i}/package.json",
            sha256=f"{i:064x}",
            framework="xgboost",
            framework_version="3.2.0",
            signature=signature,
            metrics={"auc_pr": 0.19, "auc_roc": 0.94, "brier": 0.004},
            params={"max_depth": 6, "eta": 0.1, "num_rounds": 200},
            lineage={"datasets": ["ds-curated", "ds-labels"], "training_job": f"job-{i}"},
            actor="bench",
        )
        found = registry.get("fraud-detector", version.version)
        assert found.sha256 == version.sha256

    for i in range(WARMUP):
        pair(i)
    started = time.perf_counter()
    for i in range(WARMUP, WARMUP + pairs):
        pair(i)
    seconds = time.perf_counter() - started
    registry.meta.dispose()
    return pairs / seconds


MLFLOW_SCRIPT = textwrap.dedent(
    """
    import json, logging, sys, time, warnings
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from mlflow.tracking import MlflowClient
    folder, pairs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    uri = f"sqlite:///{folder}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("fraud-detector")
    def pair(i):
        version = client.create_model_version(
            "fraud-detector", source=f"{folder}/models/{i}", run_id=None,
            tags={"auc_pr": "0.19", "framework": "xgboost"}, description="bench",
        )
        found = client.get_model_version("fraud-detector", version.version)
        assert found.source == version.source
    for i in range(warmup):
        pair(i)
    started = time.perf_counter()
    for i in range(warmup, warmup + pairs):
        pair(i)
    seconds = time.perf_counter() - started
    import mlflow
    print(json.dumps({"pairs_s": pairs / seconds, "version": mlflow.__version__}))
    """
)


def install_mlflow() -> Path:
    # mlflow-skinny is MLflow's tracking and registry client without the UI and the serving
    # stack; its SQL store needs SQLAlchemy and Alembic, as the full package does.
    python = peer_python("mlflow-skinny", "sqlalchemy", "alembic")
    return python


def mlflow_pairs_per_s(python: Path, folder: Path, pairs: int) -> tuple[float, str] | None:
    done = subprocess.run(
        [str(python), "-c", MLFLOW_SCRIPT, str(folder), str(pairs), str(WARMUP)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"mlflow run failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["pairs_s"]), str(result["version"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--peer-pairs", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()

    python = None if args.no_peer else install_mlflow()
    ours_runs, peer_runs, peer_version = [], [], ""
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="shipyard-bench-registry-") as tmp:
            ours_runs.append(shipyard_pairs_per_s(Path(tmp), args.pairs))
        if python is not None:
            with tempfile.TemporaryDirectory(prefix="shipyard-bench-mlflow-") as tmp:
                peer = mlflow_pairs_per_s(python, Path(tmp), args.peer_pairs)
            if peer is not None:
                peer_runs.append(peer[0])
                peer_version = peer[1]
        line = f"run {run + 1}: shipyard {ours_runs[-1]:,.0f} pairs/s"
        if len(peer_runs) > run:
            line += f", mlflow {peer_runs[-1]:,.0f} pairs/s"
        print(line)

    ours = statistics.median(ours_runs)
    verdict = "meets" if ours >= GOAL_PAIRS_S else "MISSES"
    print(
        f"\nshipyard ModelRegistry, SQLite: {ours:,.0f} register-and-lookup pairs/s "
        f"(median of {len(ours_runs)} runs of {args.pairs:,}; runs "
        f"{', '.join(f'{r:,.0f}' for r in ours_runs)}) -> {verdict} the goal of "
        f">= {GOAL_PAIRS_S}/s"
    )
    if peer_runs:
        peer = statistics.median(peer_runs)
        print(
            f"mlflow {peer_version} registry, SQLite: {peer:,.0f} pairs/s (median of "
            f"{len(peer_runs)} runs of {args.peer_pairs:,}) -> shipyard is {ours / peer:.1f}x "
            "MLflow's rate"
        )
    return 0 if ours >= GOAL_PAIRS_S else 1


if __name__ == "__main__":
    sys.exit(main())
