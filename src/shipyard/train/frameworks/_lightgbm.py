"""LightGBM: checkpoints are the model's text format, resumed through ``init_model``.

Determinism across a resume. LightGBM's bagging and feature-fraction generators live inside
the Booster and are not saved with the model. Shipyard therefore trains in *segments* split at
the job's checkpoint boundaries, and every segment starts the same way whether or not the
process died before it: from the model text of the previous boundary (``init_model``), with
bagging and feature-fraction seeds derived from the segment's first round. A resumed job
replays exactly the segments an unbroken one runs. The cost is one prediction pass over the
training rows per segment (LightGBM's ``init_score``). A stop in the middle of a segment
discards that segment's rounds; the job resumes from the boundary before it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from shipyard.core.artifacts import predict_positive
from shipyard.core.errors import ConfigError
from shipyard.train.frameworks.base import OnRound, Trainer, TrainingData, derive_seed

DEFAULTS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "max_bin": 127,
    "verbose": -1,
}
# Set by Shipyard (fixed, or derived per segment); the names are LightGBM parameters whose
# aliases are refused too.
_OWNED = {
    "seed": "seed",
    "bagging_seed": "seed",
    "feature_fraction_seed": "seed",
    "data_random_seed": "seed",
    "extra_seed": "seed",
    "drop_seed": "seed",
    "objective_seed": "seed",
    "num_threads": "threads",
    "num_iterations": "num_rounds",
    "deterministic": "(determinism)",
    "force_row_wise": "(determinism)",
    "force_col_wise": "(determinism)",
}


class LightGBMTrainer(Trainer):
    framework = "lightgbm"
    resumes_at_any_round = False

    @property
    def framework_version(self) -> str:
        import lightgbm as lgb

        return str(lgb.__version__)

    def params(self) -> dict[str, Any]:
        # A default gives way to the spec's value under any of its aliases (eta, n_leaves...).
        given = set(self.spec.hyperparameters)
        kept = {k: v for k, v in DEFAULTS.items() if not given & set(_aliases().get(k, [k]))}
        return {**kept, **self.spec.hyperparameters}

    def check(self) -> None:
        aliases = _aliases()
        reserved = {a: owner for name, owner in _OWNED.items() for a in aliases.get(name, [name])}
        self._refuse_reserved(reserved)
        known = set(aliases) | {a for names in aliases.values() for a in names}
        unknown = sorted(set(self.spec.hyperparameters) - known)
        if unknown:
            raise ConfigError(f"hyperparameters: LightGBM does not know {', '.join(unknown)}")
        params = self.params()
        objective = [params[a] for a in aliases.get("objective", ["objective"]) if a in params]
        if objective != ["binary"]:
            raise ConfigError(
                f"hyperparameter 'objective' must be 'binary' (the model scores a probability), "
                f"got {', '.join(map(repr, objective))}"
            )
        boosting = [params[a] for a in aliases.get("boosting", ["boosting"]) if a in params]
        if self.spec.checkpoint_interval and any(b != "gbdt" for b in boosting):
            raise ConfigError(
                f"hyperparameter boosting={boosting[0]!r} cannot resume exactly from a "
                "checkpoint; use gbdt or set checkpoint_interval: 0"
            )
        self._dry_run(params)

    def _dry_run(self, params: dict[str, Any]) -> None:
        """Build a Booster on four rows: LightGBM's own checks of values, as one line."""
        import lightgbm as lgb

        x = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
        tiny = lgb.Dataset(x, label=np.array([0.0, 1.0, 0.0, 1.0]), params={"verbose": -1})
        with _quiet_stderr():
            try:
                lgb.Booster(params=self._native(params, 0), train_set=tiny)
            except lgb.basic.LightGBMError as exc:
                message = " ".join(str(exc).split())
                raise ConfigError(f"hyperparameters: LightGBM refuses them: {message}") from None

    def _native(self, params: dict[str, Any], first_round: int) -> dict[str, Any]:
        seed = self.spec.seed
        return {
            **params,
            "num_threads": self.threads,
            "deterministic": True,
            "force_row_wise": True,
            "data_random_seed": seed,
            "bagging_seed": derive_seed(seed, first_round, 1),
            "feature_fraction_seed": derive_seed(seed, first_round, 2),
            "extra_seed": derive_seed(seed, first_round, 3),
            "drop_seed": derive_seed(seed, first_round, 4),
            "objective_seed": derive_seed(seed, first_round, 5),
        }

    def start(self, data: TrainingData, checkpoint: bytes | None) -> None:
        import lightgbm as lgb

        self._dataset = lgb.Dataset(
            data.x,
            label=data.y,
            feature_name=data.feature_names,
            free_raw_data=False,
            params=self._native(self.params(), 0),
        )
        self._model_text: str | None = None
        self.rounds_done = 0
        if checkpoint is not None:
            self._model_text = checkpoint.decode("utf-8")
            self.rounds_done = lgb.Booster(model_str=self._model_text).current_iteration()

    def train(self, rounds: int, on_round: OnRound) -> None:
        import lightgbm as lgb

        first = self.rounds_done
        stopped = []

        def report(env: lgb.callback.CallbackEnv) -> None:
            done = env.iteration + 1
            if on_round(done) and done < first + rounds:
                stopped.append(done)
                raise lgb.callback.EarlyStopException(env.iteration, [])

        init = None if self._model_text is None else lgb.Booster(model_str=self._model_text)
        booster = lgb.train(
            self._native(self.params(), first),
            self._dataset,
            num_boost_round=rounds,
            init_model=init,
            callbacks=[report],
        )
        if stopped:
            # The segment's rounds cannot be resumed exactly: keep the boundary before it.
            self.rounds_done = stopped[0]
            return
        self._model_text = booster.model_to_string()
        self.rounds_done = first + rounds

    def _booster(self) -> Any:
        import lightgbm as lgb

        if self._model_text is None:
            raise ConfigError("the LightGBM model has no rounds yet; train before saving it")
        return lgb.Booster(model_str=self._model_text)

    def checkpoint(self) -> bytes:
        if self._model_text is None:
            raise ConfigError("the LightGBM model has no rounds yet; train before saving it")
        return self._model_text.encode("utf-8")

    def artifact(self) -> bytes:
        return self.checkpoint()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict_positive("lightgbm", self._booster(), x)


def _aliases() -> dict[str, list[str]]:
    """LightGBM parameter name -> all its names (LightGBM's own table, listing the name too)."""
    from lightgbm.basic import _ConfigAliases

    table: dict[str, list[str]] = _ConfigAliases._get_all_param_aliases()
    return table


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Keep LightGBM's native '[Fatal]' line off stderr while its error becomes our message."""
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
