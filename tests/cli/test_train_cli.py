"""`shipyard train` as a user meets it: run, list, describe, stop, resume, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from shipyard.cli.train import train_app
from shipyard.scenarios.fraud import GeneratedEvents

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
Invoke = Callable[..., Result]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, fraud_events: GeneratedEvents) -> Path:
    folder = tmp_path_factory.mktemp("train-cli")
    for name, table in (("events", fraud_events.events), ("labels", fraud_events.labels)):
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame.write_parquet(folder / f"{name}.parquet")
    return folder


def _spec(folder: Path, inputs: Path, **changes: object) -> Path:
    spec: dict[str, object] = {
        "dataset": str(inputs / "events.parquet"),
        "labels": str(inputs / "labels.parquet"),
        "output_group": "fraud",
        "num_rounds": 15,
        "checkpoint_interval": 5,
        "threads": 2,
        "hyperparameters": {"max_depth": 4},
    }
    spec.update(changes)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    app = typer.Typer()
    app.add_typer(train_app, name="train")
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, ["train", *args], env={"SHIPYARD_HOME": str(tmp_path / "home")})

    return run


def _one_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shipyard: "), result.stderr
    return lines[0]


def test_run_then_list_and_describe(invoke: Invoke, tmp_path: Path, inputs: Path) -> None:
    result = invoke("run", str(_spec(tmp_path, inputs)))

    assert result.exit_code == 0, result.output
    assert "started train-" in result.stdout and "checkpoint every 5" in result.stdout
    assert "registered fraud@1 (PendingManualApproval)" in result.stdout
    for metric in ("auc_pr", "auc_roc", "recall_at_1pct_fpr", "precision_at_100", "brier"):
        assert metric in result.stdout
    job_id = result.stdout.split("started ", 1)[1].split(":", 1)[0]

    listed = invoke("list")
    assert listed.exit_code == 0 and "Completed" in listed.stdout and "15/15" in listed.stdout

    described = invoke("describe", job_id)
    assert described.exit_code == 0, described.output
    for text in ("Completed", "fraud@1", "every 5 rounds; latest at round 15", "history"):
        assert text in described.stdout
    for action in ("create", "start", "checkpoint", "complete"):
        assert action in described.stdout

    refused = invoke("resume", job_id)
    assert refused.exit_code == 1
    assert "already Completed and registered fraud@1" in _one_line(refused)
    refused = invoke("stop", job_id)
    assert refused.exit_code == 1 and "already Completed" in _one_line(refused)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"framework": "catboost"}, "field 'framework': unknown framework 'catboost'"),
        ({"num_rounds": "many"}, "field 'num_rounds' must be an integer"),
        ({"dataset": "ds-0123456789abcdef"}, "no dataset 'ds-0123456789abcdef' in the catalog"),
        ({"labels": None}, "label column 'is_fraud' is missing"),
        ({"hyperparameters": {"max_dept": 2}}, "XGBoost does not know max_dept"),
        ({"output_group": "../escape"}, "model package group name '../escape' is not allowed"),
    ],
)
def test_bad_input_exits_2_in_one_line_and_records_nothing(
    invoke: Invoke, tmp_path: Path, inputs: Path, changes: dict[str, object], message: str
) -> None:
    result = invoke("run", str(_spec(tmp_path, inputs, **changes)))
    assert result.exit_code == 2
    assert message in _one_line(result)
    assert "no training jobs yet" in invoke("list").stdout


def test_unknown_jobs_exit_2(invoke: Invoke) -> None:
    for command in ("resume", "stop", "describe"):
        result = invoke(command, "train-0000")
        assert result.exit_code == 2
        assert "no training job 'train-0000'" in _one_line(result)


def test_sigterm_stops_a_running_job_at_a_checkpoint(
    invoke: Invoke, tmp_path: Path, inputs: Path
) -> None:
    spec = _spec(tmp_path, inputs, num_rounds=5000, checkpoint_interval=50)
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [SHIPYARD, "train", "run", str(spec)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    started = process.stdout.readline()
    assert started.startswith("started train-"), started
    job_id = started.split()[1].rstrip(":")
    while "round 50" not in invoke("describe", job_id).stdout:  # training is under way
        assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 1
    assert "SIGTERM: stopping; the job resumes from its checkpoint" in stderr
    assert f"{job_id} Stopped (SIGTERM received; trained" in stderr
    described = invoke("describe", job_id).stdout
    assert "Stopped" in described and "SIGTERM received" in described
    refused = invoke("stop", job_id)
    assert refused.exit_code == 1 and "already Stopped" in _one_line(refused)
