"""The trainer contract every framework follows, so jobs, Spark and tuning can drive any of them.

A trainer fits a binary classifier *round by round* (a boosting round, or one warm-start step),
which is what makes checkpoints and resumes possible::

    trainer = make_trainer(spec)        # stores the spec; nothing else
    trainer.check()                     # ConfigError naming a bad hyperparameter
    trainer.start(data, checkpoint)     # from scratch (None) or from checkpoint bytes
    trainer.train(25, on_round)         # 25 more rounds; on_round(done) -> True stops early
    state = trainer.checkpoint()        # bytes that start() accepts
    scores = trainer.predict(matrix)    # probability of the positive class
    model = trainer.artifact()          # the package's model file (native safe format)

The guarantee a job relies on: training that restarts from ``checkpoint()`` bytes, taken at a
*checkpoint boundary* (a multiple of the job's interval, where ``train`` calls are split),
ends with a model whose predictions are bit-identical to a run that never stopped — provided
the same data, spec and ``threads``. Trainers with ``resumes_at_any_round`` keep that guarantee
for a checkpoint taken after any round (a stop that interrupts a segment).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from shipyard.core.errors import ConfigError
from shipyard.train.spec import TrainSpec, usable_cpus

OnRound = Callable[[int], bool]
"""Called after each round with the rounds done so far; returning True asks to stop early."""


@dataclass(frozen=True)
class TrainingData:
    """The training split as a trainer sees it."""

    x: np.ndarray  # float32, NaN = missing
    y: np.ndarray  # float32 0.0 / 1.0
    feature_names: list[str]


class Trainer(ABC):
    """Fits one framework's binary classifier in rounds; see the module docstring."""

    framework: ClassVar[str]
    resumes_at_any_round: ClassVar[bool] = True

    def __init__(self, spec: TrainSpec) -> None:
        self.spec = spec
        self.threads = spec.threads or usable_cpus()
        self.rounds_done = 0

    @property
    def can_checkpoint(self) -> bool:
        """Whether this model can be saved mid-training and resumed (all but one-shot fits)."""
        return True

    @property
    @abstractmethod
    def framework_version(self) -> str: ...

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters the framework is given: its defaults, then the spec's overrides."""

    @abstractmethod
    def check(self) -> None:
        """Refuse hyperparameters this framework does not accept, naming them."""

    @abstractmethod
    def start(self, data: TrainingData, checkpoint: bytes | None) -> None: ...

    @abstractmethod
    def train(self, rounds: int, on_round: OnRound) -> None:
        """Run up to ``rounds`` more rounds; ``rounds_done`` says how many have been done."""

    @abstractmethod
    def checkpoint(self) -> bytes: ...

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def artifact(self) -> bytes: ...

    def _refuse_reserved(self, reserved: Mapping[str, str]) -> None:
        """Refuse hyperparameters that a spec field owns (``reserved``: name -> field)."""
        for name, owner in reserved.items():
            if name in self.spec.hyperparameters:
                raise ConfigError(
                    f"hyperparameter {name!r} is set by the spec's {owner!r} field; "
                    f"remove it from hyperparameters"
                )


def derive_seed(seed: int, round_index: int, stream: int = 0) -> int:
    """A seed for ``round_index`` that depends only on the spec's seed and that round.

    Randomness that a checkpoint cannot carry (a framework's internal generator) is replaced
    by draws seeded from the round, so a resumed job draws exactly what an unbroken one did.
    """
    state = np.random.SeedSequence([seed, round_index, stream]).generate_state(1)[0]
    return int(state) % (2**31 - 1)
