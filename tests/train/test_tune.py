"""Tuning: an Optuna study over a job spec, every trial recorded, bad trials pruned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from shipyard.cli.train import train_app
from shipyard.core.errors import ConfigError, NotFoundError
from shipyard.pipeline import Workspace
from shipyard.storage import list_events
from shipyard.train import TrainSpec, load_spec, spec_to_dict
from shipyard.train.tune import (
    COMPLETE,
    PRUNED,
    TrialRecord,
    get_study,
    list_trials,
    search_space,
    tune,
)
from tests.train.conftest import job_spec


def test_a_study_records_every_trial_and_its_best_is_no_worse_than_the_spec(
    workspace: Workspace, fraud_files: Path
) -> None:
    spec = job_spec(fraud_files, num_rounds=10, checkpoint_interval=0)
    seen: list[TrialRecord] = []
    study = tune(
        workspace.meta, workspace.store, spec, trials=6, report_every=5, on_trial=seen.append
    )

    assert study.status == "Completed"
    assert [t.number for t in study.trials] == list(range(6)) == [t.number for t in seen]
    assert all(t.state in (COMPLETE, PRUNED) for t in study.trials)
    space = search_space(spec)
    for trial in study.trials:
        assert set(trial.hyperparameters) == set(space)
        assert trial.value is not None and trial.rounds in (5, 10)
    # Trial 0 is the spec as given (max_depth 4, the other defaults); the best beats or ties it.
    baseline = study.trials[0]
    assert baseline.hyperparameters["max_depth"] == 4 and baseline.state == COMPLETE
    assert study.best_value is not None and baseline.value is not None
    assert study.best_value >= baseline.value
    best = study.best_spec()
    assert best.hyperparameters == {**spec.hyperparameters, **study.best_hyperparameters}
    # The trials differ: TPE explored the space.
    assert len({trial.hyperparameters["eta"] for trial in study.trials}) == 6
    events = list_events(workspace.meta, entity_kind="tuning_study", entity_id=study.id)
    assert [e["action"] for e in events] == ["create"] + ["trial"] * 6 + ["complete"]


def test_trials_in_a_region_that_cannot_learn_are_pruned(
    workspace: Workspace, fraud_files: Path
) -> None:
    # A child weight far above the whole hessian sum: no split is allowed, every score is
    # the same, and the holdout AUC-PR falls to the base rate, far below trial 0's.
    spec = job_spec(
        fraud_files,
        num_rounds=10,
        checkpoint_interval=0,
        search_space={
            "min_child_weight": [100_000.0, 1_000_000.0],
            "max_depth": None,
            "eta": None,
            "subsample": None,
            "colsample_bytree": None,
        },
        hyperparameters={"max_depth": 4, "min_child_weight": 2.0},
    )
    study = tune(workspace.meta, workspace.store, spec, trials=4, report_every=5)

    trials = list_trials(workspace.meta, study.id)
    assert [t.state for t in trials] == [COMPLETE, PRUNED, PRUNED, PRUNED]
    for pruned in trials[1:]:
        assert pruned.rounds == 5  # stopped at its first report, not trained to 10
        assert "below the median" in pruned.reason
    assert study.best_number == 0
    assert get_study(workspace.meta, study.id).best_hyperparameters == {"min_child_weight": 2.0}


def test_a_bad_search_space_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="'max_depth': needs low <= high"):
        search_space(TrainSpec(search_space={"max_depth": [9, 3]}))
    with pytest.raises(ConfigError, match="'eta' must be"):
        search_space(TrainSpec(search_space={"eta": "fast"}))
    with pytest.raises(ConfigError, match="nothing to tune for lightgbm"):
        search_space(TrainSpec(framework="lightgbm"))


def test_an_unknown_study_is_not_found(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match="no tuning study 'study-nope'"):
        get_study(workspace.meta, "study-nope")


def test_the_cli_tunes_lists_trials_and_trains_the_best(
    tmp_path: Path, fraud_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("STORE_URL", "DATABASE_URL", "STREAM_URL"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    app = typer.Typer()
    app.add_typer(train_app, name="train")
    env = {"SHIPYARD_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    spec = spec_to_dict(job_spec(fraud_files, num_rounds=10, checkpoint_interval=0))
    spec_path, best_path = tmp_path / "spec.yaml", tmp_path / "best.yaml"
    spec_path.write_text(yaml.safe_dump(spec))

    tuned = CliRunner().invoke(
        app,
        ["train", "tune", str(spec_path), "--trials", "3", "--report-every", "5",
         "--write-best", str(best_path), "--train-best"],
        env=env,
    )  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    study_id = re.search(r"(study-[0-9a-f]{16})", tuned.output)
    assert study_id is not None and "trial 2:" in tuned.output
    assert "Completed" in tuned.output and "registered fraud@1" in tuned.output
    best = load_spec(best_path)
    assert best.dataset == spec["dataset"] and set(search_space(best)) <= set(best.hyperparameters)

    listed = CliRunner().invoke(app, ["train", "trials", study_id.group(1)], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("Complete") + listed.output.count("Pruned") >= 3

    missing = CliRunner().invoke(app, ["train", "trials", "study-0000"], env=env)
    assert missing.exit_code == 2
    assert "no tuning study 'study-0000'" in missing.output
    bad = CliRunner().invoke(app, ["train", "tune", str(spec_path), "--engine", "ray"], env=env)
    assert bad.exit_code == 2 and "unknown engine 'ray'" in bad.output
