"""The training job spec: what to read, which features and label, how to fit, where to register.

The same spec is a Python dataclass (:class:`TrainSpec`) or a YAML file::

    framework: xgboost            # xgboost (default) | lightgbm | sklearn
    dataset: ds-4f2a9c0e1b7d3a55  # a catalog dataset id, or a Parquet file/folder path or URI
    labels: ds-93be0c1d2e4f5a67   # optional: a second input joined on `join_on`
    join_on: event_id
    label: is_fraud
    time_column: event_time       # the latest `holdout_fraction` of events is the holdout
    features: {numeric: [amount, ...], boolean: [...], categorical: [...], derived: [...]}
    hyperparameters: {max_depth: 6, eta: 0.1}   # over the framework's defaults
    seed: 7
    num_rounds: 300
    checkpoint_interval: 25       # rounds between checkpoints; 0 = no checkpoints
    threads: 2                    # fixed for the job's whole life, so a resume computes alike
    precision_at_k: [100, 0.01]   # an integer k is a count, a fraction a share of the holdout
    output_group: fraud-detector
    engine: local                 # local (in-process) | spark (XGBoost across Spark tasks)
    workers: 0                    # Spark tasks that train together; 0 = Spark's parallelism
    search_space: {max_depth: [3, 8], eta: {low: 0.02, high: 0.3, log: true}}  # for tuning

Every problem is a ``ConfigError`` naming the field, raised before anything is recorded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from shipyard.core.artifacts import FRAMEWORKS
from shipyard.core.errors import ConfigError, InvalidRequestError
from shipyard.core.features import DERIVED_FEATURES
from shipyard.core.names import check_name

FRAUD_NUMERIC = (
    "amount",
    "card_age_days",
    "txn_count_1h",
    "txn_count_24h",
    "avg_amount_30d",
    "distance_from_home_km",
    "device_trust_score",
    "hour_of_day",
    "merchant_risk_score",
    "prev_chargebacks",
    "account_balance",
)
FRAUD_BOOLEAN = ("is_foreign", "is_weekend")
FRAUD_CATEGORICAL = ("currency", "merchant_category", "country", "channel")
FRAUD_DERIVED = ("log_amount", "amount_to_avg_ratio", "txn_velocity_ratio")
FEATURE_KINDS = ("numeric", "boolean", "categorical", "derived")
MAX_SEED = 2**32 - 1
ENGINES = ("local", "spark")


@dataclass(frozen=True)
class TrainSpec:
    """A training job. Defaults train the fraud model; a job also needs ``dataset`` and
    ``output_group``. ``hyperparameters`` override the framework's defaults (see
    :mod:`shipyard.train.frameworks`)."""

    dataset: str = ""
    output_group: str = ""
    framework: str = "xgboost"
    labels: str | None = None
    join_on: str = "event_id"
    label: str = "is_fraud"
    time_column: str = "event_time"
    numeric: tuple[str, ...] = FRAUD_NUMERIC
    boolean: tuple[str, ...] = FRAUD_BOOLEAN
    categorical: tuple[str, ...] = FRAUD_CATEGORICAL
    derived: tuple[str, ...] = FRAUD_DERIVED
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    num_rounds: int = 150
    checkpoint_interval: int = 0
    holdout_fraction: float = 0.2
    precision_at_k: tuple[float, ...] = (100, 0.01)
    threads: int = 0
    engine: str = "local"
    workers: int = 0
    search_space: Mapping[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.numeric, *self.boolean, *self.categorical, *self.derived)

    def with_threads(self) -> TrainSpec:
        """This spec with ``threads`` fixed to a number (0 means every CPU we may use)."""
        if self.threads:
            return self
        return replace(self, threads=usable_cpus())


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the platform has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def load_spec(path: str | Path) -> TrainSpec:
    """Read a spec from a YAML file; every problem is a ``ConfigError`` naming file and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the training spec: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a training spec is a mapping of fields, got {_kind(data)}")
    return spec_from_dict(data, source=str(path))


def spec_from_dict(data: Mapping[str, Any], *, source: str = "spec") -> TrainSpec:
    """Build and check a spec from plain data (parsed YAML, or a job's stored params)."""
    values = dict(data)
    features = values.pop("features", None)
    if features is not None:
        if not isinstance(features, Mapping):
            raise ConfigError(
                f"{source}: field 'features' must map {', '.join(FEATURE_KINDS)} to lists "
                f"of column names, got {_kind(features)}"
            )
        unknown = sorted(set(features) - set(FEATURE_KINDS))
        if unknown:
            raise ConfigError(
                f"{source}: unknown feature kind(s) {unknown}; use {', '.join(FEATURE_KINDS)}"
            )
        for kind in FEATURE_KINDS:
            if kind in values and kind in features:
                raise ConfigError(f"{source}: field {kind!r} is given twice (and under features)")
            values[kind] = features.get(kind, [])
    known = {f.name for f in fields(TrainSpec)}
    unknown = sorted(str(k) for k in set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown field(s) {', '.join(unknown)}; "
            f"known fields: {', '.join(sorted(known | {'features'}))}"
        )
    for name in (*FEATURE_KINDS, "precision_at_k"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    spec = TrainSpec(**values)
    check_spec(spec, source=source)
    return spec


def spec_to_dict(spec: TrainSpec) -> dict[str, Any]:
    """Plain data that :func:`spec_from_dict` turns back into the same spec."""
    data = asdict(spec)
    data["hyperparameters"] = dict(spec.hyperparameters)
    data["search_space"] = dict(spec.search_space)
    for name in (*FEATURE_KINDS, "precision_at_k"):
        data[name] = list(data[name])
    return data


def check_spec(spec: TrainSpec, *, source: str = "spec", for_job: bool = False) -> TrainSpec:
    """Refuse a spec with a wrong type or value, naming the field; a job needs input and group."""
    where = f"{source}: field"
    if spec.framework not in FRAMEWORKS:
        raise ConfigError(
            f"{where} 'framework': unknown framework {spec.framework!r}; "
            f"choose {', '.join(FRAMEWORKS)}"
        )
    _check_engine(where, spec)
    for name in ("label", "time_column", "join_on"):
        _check_text(where, name, getattr(spec, name))
    if for_job or spec.dataset:
        _check_text(where, "dataset", spec.dataset)
    if spec.labels is not None:
        _check_text(where, "labels", spec.labels)
    if for_job or spec.output_group:
        _check_text(where, "output_group", spec.output_group)
        try:
            check_name("model package group", spec.output_group)
        except InvalidRequestError as exc:
            raise ConfigError(f"{where} 'output_group': {exc}") from None
    _check_features(where, spec)
    if not isinstance(spec.hyperparameters, Mapping) or not all(
        isinstance(k, str) for k in spec.hyperparameters
    ):
        raise ConfigError(
            f"{where} 'hyperparameters' must map names to values, got {_kind(spec.hyperparameters)}"
        )
    _check_int(where, "seed", spec.seed, 0, MAX_SEED)
    _check_int(where, "num_rounds", spec.num_rounds, 1, 1_000_000)
    _check_int(where, "checkpoint_interval", spec.checkpoint_interval, 0, spec.num_rounds)
    _check_int(where, "threads", spec.threads, 0, 4096)
    _check_int(where, "workers", spec.workers, 0, 4096)
    if not isinstance(spec.search_space, Mapping):
        raise ConfigError(
            f"{where} 'search_space' must map hyperparameter names to ranges, "
            f"got {_kind(spec.search_space)}"
        )
    _check_fraction(where, "holdout_fraction", spec.holdout_fraction)
    _check_precision_at_k(where, spec.precision_at_k)
    return spec


def _check_engine(where: str, spec: TrainSpec) -> None:
    if spec.engine not in ENGINES:
        raise ConfigError(
            f"{where} 'engine': unknown engine {spec.engine!r}; choose {', '.join(ENGINES)}"
        )
    if spec.engine == "spark" and spec.framework != "xgboost":
        raise ConfigError(
            f"{where} 'engine': Spark trains XGBoost only, not {spec.framework!r}; "
            "use engine: local for it"
        )


def _check_features(where: str, spec: TrainSpec) -> None:
    for kind in FEATURE_KINDS:
        columns = getattr(spec, kind)
        if not isinstance(columns, tuple) or not all(isinstance(c, str) and c for c in columns):
            raise ConfigError(f"{where} {kind!r} must be a list of column names, got {columns!r}")
    features = spec.features
    if not features:
        raise ConfigError(f"{where}s numeric/boolean/categorical/derived: no features to train on")
    repeated = sorted({c for c in features if features.count(c) > 1})
    if repeated:
        raise ConfigError(f"{where}s features: {', '.join(repeated)} listed more than once")
    unknown = [name for name in spec.derived if name not in DERIVED_FEATURES]
    if unknown:
        raise ConfigError(
            f"{where} 'derived': unknown derived feature(s) {', '.join(unknown)}; "
            f"known: {', '.join(DERIVED_FEATURES)}"
        )
    if spec.label in features:
        raise ConfigError(
            f"{where} 'label': {spec.label!r} is also a feature; that leaks the answer"
        )


def _check_text(where: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} {name!r} must be a non-empty string, got {value!r}")


def _check_int(where: str, name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} {name!r} must be an integer, got {value!r} ({_kind(value)})")
    if not low <= value <= high:
        raise ConfigError(f"{where} {name!r} must be between {low} and {high}, got {value}")


def _check_fraction(where: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} {name!r} must be a number, got {value!r} ({_kind(value)})")
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{where} {name!r} must be between 0 and 1 (exclusive), got {value}")


def _check_precision_at_k(where: str, values: object) -> None:
    if not isinstance(values, tuple) or not values:
        raise ConfigError(f"{where} 'precision_at_k' must be a non-empty list, got {values!r}")
    for k in values:
        is_count = isinstance(k, int) and not isinstance(k, bool) and k >= 1
        is_share = isinstance(k, float) and math.isfinite(k) and 0.0 < k < 1.0
        if not (is_count or is_share):
            raise ConfigError(
                f"{where} 'precision_at_k': {k!r} is neither a count (an integer >= 1) "
                "nor a share of the holdout (a number between 0 and 1)"
            )


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
