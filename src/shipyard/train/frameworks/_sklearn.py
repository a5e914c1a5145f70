"""scikit-learn: HistGradientBoostingClassifier (checkpoints) or LogisticRegression (one piece).

Only a warm-start estimator that grows round by round can checkpoint:
``HistGradientBoostingClassifier`` with ``warm_start`` adds ``max_iter`` trees per call, and its
state (trees, binning, its own seed and generator) round-trips through skops exactly, so a fit
resumed from a checkpoint equals one that never stopped. ``LogisticRegression`` (in a pipeline
with median imputation and scaling, as it cannot read missing values) trains in one solver run:
``num_rounds`` is its ``max_iter``, and a job that uses it must set ``checkpoint_interval: 0``
(a killed job restarts from the beginning). Checkpoints and artifacts are skops files, loaded
only with Shipyard's trusted-type list (:mod:`shipyard.core.artifacts`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from shipyard.core.artifacts import load_skops, predict_positive
from shipyard.core.errors import ConfigError
from shipyard.train.frameworks.base import OnRound, Trainer, TrainingData

HGB = "HistGradientBoostingClassifier"
LOGISTIC = "LogisticRegression"
ESTIMATORS = (HGB, LOGISTIC)
RESERVED = {
    "random_state": "seed",
    "max_iter": "num_rounds",
    "warm_start": "checkpoint_interval",
    "early_stopping": "holdout_fraction",
    "n_jobs": "threads",
}
_log = logging.getLogger(__name__)


class SklearnTrainer(Trainer):
    framework = "sklearn"

    @property
    def framework_version(self) -> str:
        import sklearn

        return str(sklearn.__version__)

    @property
    def estimator_name(self) -> str:
        return str(self.spec.hyperparameters.get("estimator", HGB))

    @property
    def can_checkpoint(self) -> bool:
        return self.estimator_name == HGB

    def params(self) -> dict[str, Any]:
        return {"estimator": self.estimator_name, **self.spec.hyperparameters}

    def check(self) -> None:
        self._refuse_reserved(RESERVED)
        if self.estimator_name not in ESTIMATORS:
            raise ConfigError(
                f"hyperparameter 'estimator': {self.estimator_name!r} is not one of "
                f"{', '.join(ESTIMATORS)}"
            )
        if not self.can_checkpoint and self.spec.checkpoint_interval:
            raise ConfigError(
                f"field 'checkpoint_interval': {self.estimator_name} trains in one piece and "
                f"cannot checkpoint (only {HGB} grows round by round); set checkpoint_interval: 0"
            )
        try:
            self._classifier()._validate_params()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"hyperparameters: scikit-learn refuses them: {exc}") from None

    def _classifier(self) -> Any:
        settings = {k: v for k, v in self.spec.hyperparameters.items() if k != "estimator"}
        if self.estimator_name == HGB:
            from sklearn.ensemble import HistGradientBoostingClassifier

            return HistGradientBoostingClassifier(
                **settings, random_state=self.spec.seed, warm_start=True, early_stopping=False
            )
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(
            **settings, random_state=self.spec.seed, max_iter=self.spec.num_rounds
        )

    def _new_estimator(self) -> Any:
        if self.estimator_name == HGB:
            return self._classifier()
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), self._classifier())

    def start(self, data: TrainingData, checkpoint: bytes | None) -> None:
        self._x = data.x
        self._y = data.y.astype(np.int8)
        self._model = self._new_estimator() if checkpoint is None else load_skops(checkpoint)
        self.rounds_done = 0 if checkpoint is None else int(self._model.n_iter_)

    def train(self, rounds: int, on_round: OnRound) -> None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if self.can_checkpoint:
                self._model.set_params(max_iter=self.rounds_done + rounds)
                self._model.fit(self._x, self._y)
                self.rounds_done = int(self._model.n_iter_)
            else:
                self._model.fit(self._x, self._y)
                self.rounds_done = self.spec.num_rounds
        for warning in seen:
            # e.g. ConvergenceWarning: the model is still usable; the log says why it may be weak.
            _log.warning("%s: %s", self.estimator_name, warning.message)
        on_round(self.rounds_done)

    def checkpoint(self) -> bytes:
        import skops.io as sio

        return bytes(sio.dumps(self._model))

    def artifact(self) -> bytes:
        return self.checkpoint()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict_positive("sklearn", self._model, x)
