"""Trainers behind one interface (see :mod:`shipyard.train.frameworks.base`)."""

from __future__ import annotations

from shipyard.core.errors import ConfigError
from shipyard.train.frameworks._lightgbm import LightGBMTrainer
from shipyard.train.frameworks._sklearn import SklearnTrainer
from shipyard.train.frameworks._xgboost import XGBoostTrainer
from shipyard.train.frameworks.base import OnRound, Trainer, TrainingData, derive_seed
from shipyard.train.spec import TrainSpec

TRAINERS: dict[str, type[Trainer]] = {
    trainer.framework: trainer for trainer in (XGBoostTrainer, LightGBMTrainer, SklearnTrainer)
}


def make_trainer(spec: TrainSpec) -> Trainer:
    """The trainer of ``spec.framework`` on ``spec.engine``; call ``check()`` before training."""
    if spec.engine == "spark" and spec.framework == "xgboost":
        # Imported here: only a Spark job needs pyspark (and its JVM start-up).
        from shipyard.train.spark import SparkXGBoostTrainer

        return SparkXGBoostTrainer(spec)
    trainer = TRAINERS.get(spec.framework)
    if trainer is None:
        raise ConfigError(
            f"field 'framework': unknown framework {spec.framework!r}; choose {', '.join(TRAINERS)}"
        )
    return trainer(spec)


__all__ = [
    "TRAINERS",
    "LightGBMTrainer",
    "OnRound",
    "SklearnTrainer",
    "Trainer",
    "TrainingData",
    "XGBoostTrainer",
    "derive_seed",
    "make_trainer",
]
