"""Spot-safe training: a job killed with SIGKILL at any round resumes to the identical model.

Each kill runs the job in its own process (``job_driver.py``), which pauses at a chosen round
and is killed there with SIGKILL; the job is then resumed here from its latest checkpoint.
The processes run side by side, so three kills cost about one process start. The model must
match an unbroken run's bit for bit: with row and column sampling on, that holds only because
the samples come from (seed, round) rather than XGBoost's internal generator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from shipyard.core.config import Settings
from shipyard.core.package import load_package
from shipyard.pipeline import Workspace
from shipyard.pipeline.training import resume_training, run_training
from shipyard.train import COMPLETED, IN_PROGRESS, TrainingJob, get_job, job_events, load_spec

DRIVER = Path(__file__).with_name("job_driver.py")
ROOT = Path(__file__).resolve().parents[2]
# (framework, round the process is killed at, checkpoint the job must resume from). LightGBM's
# and scikit-learn's resumes are covered in-process by test_jobs (stop, then resume).
KILLS = [("xgboost", 3, 0), ("xgboost", 17, 15), ("xgboost", 33, 30)]
HYPERPARAMETERS = {"xgboost": {"max_depth": 4, "subsample": 0.7, "colsample_bytree": 0.6}}


def _write_spec(folder: Path, files: Path, framework: str) -> Path:
    spec = {
        "framework": framework,
        "dataset": str(files / "events.parquet"),
        "labels": str(files / "labels.parquet"),
        "output_group": f"spot-{framework}",
        "num_rounds": 40,
        "checkpoint_interval": 5,
        "threads": 2,
        "seed": 5,
        "hyperparameters": HYPERPARAMETERS[framework],
    }
    path = folder / f"{framework}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _killed_at(process: subprocess.Popen[str], round_index: int) -> str:
    """Read the driver until it pauses at ``round_index``; SIGKILL it; return the job id."""
    assert process.stdout is not None
    job_id = ""
    for line in process.stdout:
        if line.startswith("job "):
            job_id = line.split()[1]
        if line.strip() == "paused":
            break
    else:
        pytest.fail(f"the job process ended before round {round_index}: {process.wait()}")
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    return job_id


def _predictions(workspace: Workspace, job: TrainingJob, events: pl.DataFrame) -> np.ndarray:
    version = workspace.registry.get(job.spec.output_group, int(job.model["number"]))
    model = load_package(workspace.store, version.artifact_uri, version.sha256)
    return model.score(events)[0]


def test_a_killed_job_resumes_from_its_checkpoint_to_the_identical_model(
    settings: Settings, fraud_files: Path, tmp_path: Path
) -> None:
    specs = {fw: _write_spec(tmp_path, fraud_files, fw) for fw in HYPERPARAMETERS}
    env = {**os.environ, "SHIPYARD_HOME": str(settings.home)}
    processes = [
        subprocess.Popen(
            [sys.executable, str(DRIVER), str(specs[framework]), str(kill_round)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )  # fmt: skip
        for framework, kill_round, _ in KILLS
    ]
    workspace = Workspace.open(settings)
    try:
        unbroken = {fw: run_training(workspace, load_spec(path)) for fw, path in specs.items()}
        events = pl.read_parquet(fraud_files / "events.parquet")
        expected = {fw: _predictions(workspace, job, events) for fw, job in unbroken.items()}
        for process, (framework, kill_round, checkpoint_round) in zip(
            processes, KILLS, strict=True
        ):
            job_id = _killed_at(process, kill_round)
            killed = get_job(workspace.meta, job_id)
            assert killed.status == IN_PROGRESS and killed.is_orphaned, killed.describe_state()
            assert killed.resume_round == checkpoint_round

            resumed = resume_training(workspace, job_id)

            assert resumed.status == COMPLETED
            history = job_events(workspace.meta, job_id)
            resume = next(e for e in history if e["action"] == "resume")
            assert resume["from_state"] == IN_PROGRESS and resume["to_state"] == IN_PROGRESS
            assert f"process was lost by process {os.getpid()}" in resume["reason"]
            assert f"from checkpoint round {checkpoint_round}" in resume["reason"]
            checkpoints = [e["details"]["round"] for e in history if e["action"] == "checkpoint"]
            assert checkpoints == [*range(5, kill_round, 5), *range(checkpoint_round + 5, 45, 5)]
            predictions = _predictions(workspace, resumed, events)
            assert np.array_equal(predictions, expected[framework]), (framework, kill_round)
            version = workspace.registry.get(
                resumed.spec.output_group, int(resumed.model["number"])
            )
            assert version.lineage["training_job"] == job_id
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        workspace.close()
