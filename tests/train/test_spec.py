"""The job spec: YAML and Python give the same spec; every mistake names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.errors import ConfigError
from shipyard.train import TrainSpec, check_spec, load_spec, spec_from_dict, spec_to_dict

YAML = """
framework: lightgbm
dataset: ds-0123456789abcdef
labels: data/labels.parquet
output_group: fraud-detector
label: is_fraud
features:
  numeric: [amount, txn_count_1h, txn_count_24h]
  categorical: [country]
  derived: [txn_velocity_ratio]
hyperparameters: {num_leaves: 15, learning_rate: 0.05}
seed: 7
num_rounds: 300
checkpoint_interval: 25
precision_at_k: [100, 0.01]
threads: 2
"""


def test_yaml_spec_reads_into_the_dataclass(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(YAML)
    spec = load_spec(path)
    assert spec.framework == "lightgbm" and spec.dataset == "ds-0123456789abcdef"
    assert spec.numeric == ("amount", "txn_count_1h", "txn_count_24h")
    assert spec.boolean == () and spec.categorical == ("country",)
    assert spec.hyperparameters == {"num_leaves": 15, "learning_rate": 0.05}
    assert (spec.num_rounds, spec.checkpoint_interval, spec.threads) == (300, 25, 2)
    assert spec.precision_at_k == (100, 0.01)
    assert spec_from_dict(spec_to_dict(spec)) == spec
    assert check_spec(spec, for_job=True) is spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"framework": "catboost"}, "field 'framework': unknown framework 'catboost'"),
        ({"num_rounds": "ten"}, "field 'num_rounds' must be an integer, got 'ten' (str)"),
        ({"num_rounds": True}, "field 'num_rounds' must be an integer"),
        ({"num_rounds": 0}, "field 'num_rounds' must be between 1 and"),
        ({"checkpoint_interval": 500}, "field 'checkpoint_interval' must be between 0 and 300"),
        ({"seed": -1}, "field 'seed' must be between 0"),
        ({"holdout_fraction": 1.5}, "field 'holdout_fraction' must be between 0 and 1"),
        ({"holdout_fraction": "big"}, "field 'holdout_fraction' must be a number"),
        ({"output_group": "../models"}, "field 'output_group': model package group name"),
        ({"output_group": "a/b"}, "field 'output_group': model package group name"),
        ({"dataset": 42}, "field 'dataset' must be a non-empty string, got 42"),
        ({"label": "amount"}, "field 'label': 'amount' is also a feature"),
        ({"hyperparameters": [1, 2]}, "field 'hyperparameters' must map names to values"),
        ({"precision_at_k": [0]}, "'precision_at_k': 0 is neither a count"),
        ({"precision_at_k": [1.5]}, "'precision_at_k': 1.5 is neither a count"),
        ({"features": {"numeric": "amount"}}, "field 'numeric' must be a list of column names"),
        ({"features": {"derived": ["nope"]}}, "unknown derived feature(s) nope"),
        ({"features": {"numeric": ["amount", "amount"]}}, "amount listed more than once"),
        ({"features": {"text": ["memo"]}}, "unknown feature kind(s) ['text']"),
        ({"epochs": 3}, "unknown field(s) epochs"),
    ],
)
def test_a_bad_field_is_named(tmp_path: Path, change: dict[str, object], message: str) -> None:
    import yaml

    data = yaml.safe_load(YAML)
    data.update(change)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_job_needs_a_dataset_and_a_group() -> None:
    with pytest.raises(ConfigError, match="field 'dataset' must be a non-empty string"):
        check_spec(TrainSpec(output_group="g"), for_job=True)
    with pytest.raises(ConfigError, match="field 'output_group' must be a non-empty string"):
        check_spec(TrainSpec(dataset="x.parquet"), for_job=True)
    check_spec(TrainSpec())  # in memory, neither is needed


def test_unreadable_or_malformed_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the training spec"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("framework: [xgboost\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- xgboost\n")
    with pytest.raises(ConfigError, match="a training spec is a mapping of fields, got list"):
        load_spec(tmp_path / "list.yaml")


def test_threads_zero_means_every_usable_cpu_fixed_once() -> None:
    spec = TrainSpec().with_threads()
    assert spec.threads >= 1
    assert spec.with_threads() is spec
