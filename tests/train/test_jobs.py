"""Training jobs: states and reasons, registration, stop and resume, refusals that leave nothing."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from shipyard.core.config import Settings
from shipyard.core.errors import (
    ConfigError,
    DataError,
    IntegrityError,
    NotFoundError,
    StateError,
)
from shipyard.core.package import load_package
from shipyard.pipeline import Workspace
from shipyard.pipeline.training import resume_training, run_training, stop_training
from shipyard.registry import PENDING
from shipyard.storage import content_hash, list_events, record_dataset
from shipyard.storage.schema import runs
from shipyard.train import (
    COMPLETED,
    IN_PROGRESS,
    STOPPED,
    STOPPING,
    StopSignal,
    TrainingJob,
    TrainSpec,
    get_job,
    job_events,
    list_jobs,
)
from tests.train.conftest import job_spec


def _stop_at(stop: StopSignal, round_index: int):  # type: ignore[no-untyped-def]
    def progress(done: int, total: int) -> None:
        if done >= round_index:
            stop.request(f"test stop at round {round_index}")

    return progress


def _scores(workspace: Workspace, job: TrainingJob, events: pl.DataFrame) -> np.ndarray:
    version = workspace.registry.get(job.spec.output_group, int(job.model["number"]))
    model = load_package(workspace.store, version.artifact_uri, version.sha256)
    return model.score(events)[0]


def test_a_job_registers_its_model_and_records_every_state(
    workspace: Workspace, fraud_files: Path
) -> None:
    job = run_training(workspace, job_spec(fraud_files), actor="tester")

    assert job.status == COMPLETED and job.rounds_done == 20
    assert job.checkpoint is not None and job.checkpoint.round == 20
    changes = [
        (e["action"], e["from_state"], e["to_state"]) for e in job_events(workspace.meta, job.id)
    ]
    assert changes == [
        ("create", None, "Pending"),
        ("start", "Pending", "InProgress"),
        *[("checkpoint", None, None)] * 4,
        ("complete", "InProgress", "Completed"),
    ]
    reasons = [e["reason"] for e in job_events(workspace.meta, job.id)]
    assert all(reasons) and "registered fraud@1" in reasons[-1]

    version = workspace.registry.get("fraud", 1)
    assert version.approval_status == PENDING and job.model["version"] == "fraud@1"
    assert version.lineage["training_job"] == job.id
    assert [i["sha256"] for i in version.lineage["inputs"]] == [i["sha256"] for i in job.inputs]
    for name in ("auc_pr", "auc_roc", "recall_at_1pct_fpr", "precision_at_100", "brier"):
        assert 0.0 <= job.metrics[name] <= 1.0, name
    assert job.metrics["precision_at_1pct"] > job.metrics["base_rate"]
    model = load_package(workspace.store, version.artifact_uri, version.sha256)
    assert model.manifest["metrics"] == job.metrics == version.metrics
    assert model.manifest["params"]["training_job"] == job.id
    # Only the latest checkpoint is kept.
    assert workspace.store.list_keys(f"checkpoints/{job.id}") == [job.checkpoint.key]


@pytest.mark.parametrize(
    ("framework", "hyperparameters", "stop_round", "resume_round"),
    [
        ("xgboost", {"max_depth": 4, "subsample": 0.7, "colsample_bytree": 0.6}, 7, 7),
        ("lightgbm", {"num_leaves": 15, "bagging_fraction": 0.7}, 12, 10),
        ("sklearn", {"max_leaf_nodes": 15}, 8, 10),
    ],
)
def test_a_stopped_job_resumes_to_the_identical_model(
    workspace: Workspace,
    fraud_files: Path,
    framework: str,
    hyperparameters: dict[str, object],
    stop_round: int,
    resume_round: int,
) -> None:
    spec = job_spec(fraud_files, framework=framework, hyperparameters=hyperparameters)
    unbroken = run_training(workspace, spec)

    stop = StopSignal()
    stopped = run_training(workspace, spec, stop=stop, progress=_stop_at(stop, stop_round))
    assert stopped.status == STOPPED
    # XGBoost checkpoints where it stopped; LightGBM drops the unfinished segment; the
    # scikit-learn fit cannot be interrupted, so it stops at the end of its segment.
    assert stopped.resume_round == resume_round
    last = job_events(workspace.meta, stopped.id)[-2:]
    assert [(e["from_state"], e["to_state"]) for e in last] == [
        ("InProgress", "Stopping"),
        ("Stopping", "Stopped"),
    ]
    assert f"resumes from round {resume_round}" in last[-1]["reason"]

    resumed = resume_training(workspace, stopped.id)
    assert resumed.status == COMPLETED
    resume_event = next(
        e for e in job_events(workspace.meta, resumed.id) if e["action"] == "resume"
    )
    assert f"from checkpoint round {resume_round}" in resume_event["reason"]
    holdout = pl.read_parquet(fraud_files / "events.parquet").tail(2000)
    assert np.array_equal(
        _scores(workspace, resumed, holdout), _scores(workspace, unbroken, holdout)
    )


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"dataset": "ds-0123456789abcdef"}, NotFoundError, "no dataset 'ds-0123456789abcdef'"),
        ({"dataset": "/nowhere/events.parquet"}, NotFoundError, "neither a dataset id"),
        ({"labels": None}, DataError, "label column 'is_fraud' is missing"),
        ({"label": "is_weekend", "labels": None}, ConfigError, "'is_weekend' is also a feature"),
        ({"framework": "catboost"}, ConfigError, "unknown framework 'catboost'"),
        ({"num_rounds": "20"}, ConfigError, "field 'num_rounds' must be an integer"),
        ({"output_group": "a/../b"}, ConfigError, "field 'output_group'"),
        ({"hyperparameters": {"max_dept": 3}}, ConfigError, "XGBoost does not know max_dept"),
    ],
)
def test_bad_input_is_one_clear_error_and_leaves_nothing(
    workspace: Workspace,
    fraud_files: Path,
    change: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        run_training(workspace, job_spec(fraud_files, **change))
    assert message in str(caught.value)
    assert list_jobs(workspace.meta) == []
    assert workspace.registry.list_versions() == []
    assert workspace.store.list_keys("models") == workspace.store.list_keys("checkpoints") == []


def test_a_label_without_positives_or_constant_is_refused(
    workspace: Workspace, fraud_files: Path, tmp_path: Path
) -> None:
    labels = pl.read_parquet(fraud_files / "labels.parquet")
    for value, message in ((0, "has no positive examples among 40000 rows"), (1, "is constant")):
        path = tmp_path / f"labels-{value}.parquet"
        labels.with_columns(is_fraud=pl.lit(value, pl.Int64)).write_parquet(path)
        with pytest.raises(DataError, match=message):
            run_training(workspace, job_spec(fraud_files, labels=str(path)))
    assert list_jobs(workspace.meta) == []


def test_catalog_datasets_are_inputs_and_lineage(workspace: Workspace, fraud_files: Path) -> None:
    ids = []
    for name in ("events", "labels"):
        data = (fraud_files / f"{name}.parquet").read_bytes()
        key = f"curated/cards/{name}.parquet"
        sha = workspace.store.put_bytes(key, data)
        dataset = record_dataset(
            workspace.meta,
            name=f"cards/{name}",
            zone="curated",
            uri=workspace.store.url(key),
            content_hash=content_hash([(key, sha)]),
            rows=40_000,
        )
        ids.append(dataset.id)
    job = run_training(workspace, job_spec(fraud_files, dataset=ids[0], labels=ids[1]))
    assert workspace.registry.get("fraud", 1).lineage["datasets"] == ids
    assert [i["dataset_id"] for i in job.inputs] == ids

    workspace.store.put_bytes("curated/cards/labels.parquet", b"changed")
    with pytest.raises(IntegrityError, match=f"dataset {ids[1]} .* changed since it was recorded"):
        run_training(workspace, job_spec(fraud_files, dataset=ids[0], labels=ids[1]))


def test_resume_refuses_changed_data_and_a_tampered_checkpoint(
    workspace: Workspace, fraud_files: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events.parquet"
    events.write_bytes((fraud_files / "events.parquet").read_bytes())
    spec = job_spec(fraud_files, dataset=str(events))
    stop = StopSignal()
    job = run_training(workspace, spec, stop=stop, progress=_stop_at(stop, 6))
    assert job.status == STOPPED and job.checkpoint is not None

    original = events.read_bytes()
    pl.read_parquet(events).head(39_000).write_parquet(events)
    with pytest.raises(DataError, match="input changed since it started"):
        resume_training(workspace, job.id)
    events.write_bytes(original)

    workspace.store.put_bytes(job.checkpoint.key, b"not the checkpoint")
    with pytest.raises(IntegrityError, match="sha256"):
        resume_training(workspace, job.id)
    assert get_job(workspace.meta, job.id).status == STOPPED  # both refusals changed nothing


def _set_process(workspace: Workspace, job: TrainingJob, **process: object) -> TrainingJob:
    outputs = dict(job.outputs, process={**job.outputs["process"], **process})
    with workspace.meta.transaction() as connection:
        connection.execute(
            runs.update().where(runs.c.id == job.id).values(status=IN_PROGRESS, outputs=outputs)
        )
    return get_job(workspace.meta, job.id)


def test_a_job_whose_process_is_gone_is_recognised_and_resumable(
    workspace: Workspace, fraud_files: Path
) -> None:
    stop = StopSignal()
    job = run_training(workspace, job_spec(fraud_files), stop=stop, progress=_stop_at(stop, 6))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead_pid = int(gone.stdout)

    orphan = _set_process(workspace, job, pid=dead_pid, start_ticks=None, heartbeat_at=time.time())
    assert orphan.is_orphaned and orphan.is_resumable
    assert f"process {dead_pid} on {socket.gethostname()} is gone" in orphan.describe_state()

    alive = _set_process(workspace, job, pid=os.getpid(), heartbeat_at=time.time())
    assert alive.is_running and not alive.is_resumable
    with pytest.raises(StateError, match=f"is InProgress in process {os.getpid()}"):
        resume_training(workspace, job.id)

    stale = _set_process(workspace, job, heartbeat_at=time.time() - 120)
    assert stale.is_orphaned  # alive pid, silent heartbeat: a reused pid or a frozen process
    other_host = _set_process(workspace, job, host="elsewhere", heartbeat_at=time.time())
    assert other_host.is_running

    assert stop_training(workspace, job.id, wait_s=0).status == STOPPING  # it is running
    orphan = _set_process(workspace, job, host="elsewhere", heartbeat_at=time.time() - 120)
    assert orphan.is_orphaned and orphan.status == IN_PROGRESS
    stopped = stop_training(workspace, job.id, wait_s=0)  # nobody to ask: Stopped at once
    assert stopped.status == STOPPED
    assert "its process is gone" in job_events(workspace.meta, job.id)[-1]["reason"]
    assert resume_training(workspace, job.id).status == COMPLETED


def test_finished_jobs_cannot_be_resumed_or_stopped(
    workspace: Workspace, fraud_files: Path
) -> None:
    job = run_training(workspace, job_spec(fraud_files, checkpoint_interval=0))
    with pytest.raises(StateError, match="already Completed and registered fraud@1"):
        resume_training(workspace, job.id)
    with pytest.raises(StateError, match="already Completed; nothing to stop"):
        stop_training(workspace, job.id)
    with pytest.raises(NotFoundError, match="no training job 'train-nope'"):
        resume_training(workspace, "train-nope")


def test_a_job_runs_on_postgresql(postgres_url: str, tmp_path: Path, fraud_files: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    workspace = Workspace.open(settings)
    try:
        stop = StopSignal()
        spec = job_spec(fraud_files, num_rounds=10)
        job = run_training(workspace, spec, stop=stop, progress=_stop_at(stop, 3))
        assert job.status == STOPPED
        job = resume_training(workspace, job.id)
        assert job.status == COMPLETED and job.model["version"] == "fraud@1"
        actions = [e["action"] for e in list_events(workspace.meta, entity_id=job.id)]
        assert actions[:2] == ["create", "start"] and actions[-1] == "complete"
        assert "resume" in actions
    finally:
        workspace.close()


def test_in_memory_fit_is_the_job_without_a_record(fraud_frame: pl.DataFrame) -> None:
    from shipyard.train import fit

    spec = TrainSpec(num_rounds=10, seed=3, threads=2, precision_at_k=(50, 0.005))
    result = fit(fraud_frame, spec)
    assert {"precision_at_50", "precision_at_0.5pct", "brier"} <= set(result.metrics)
    assert result.contents.framework == "xgboost"
    assert result.contents.params["spec"]["num_rounds"] == 10
    again = fit(fraud_frame, dataclasses.replace(spec))
    assert np.array_equal(again.holdout_scores, result.holdout_scores)
