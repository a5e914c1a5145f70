"""XGBoost: the default trainer of the fraud scenario.

Determinism across a resume. XGBoost 3.2 draws row and column samples (``subsample``,
``colsample_*``) from a random generator that lives inside the Booster object: it is seeded
when a Booster is configured and advances every round, and it is not part of the saved model.
A Booster rebuilt from a checkpoint therefore samples differently from one that kept running,
and ``seed_per_iteration`` does not help (we measured both: predictions differ). So Shipyard
draws the samples itself, from a generator seeded by (seed, round index):

* ``subsample``: a 0/1 weight per training row for the round (a zero weight zeroes the row's
  gradient and hessian, exactly what XGBoost's uniform sampling does);
* ``colsample_bytree``: ``feature_weights`` of 1 on the round's K sampled columns and 0
  elsewhere, with XGBoost asked for K columns, so its own draw can only pick those K.

Nothing random is then left inside the Booster, and continuing in memory or from the UBJ
checkpoint at any round computes the same trees (with the same ``threads``). The histogram
bins are cut once from the unweighted training rows (``QuantileDMatrix``), not at the first
update under that round's sample weights. Per-level and
per-node column sampling, gradient-based sampling, and the dart and gblinear boosters use
XGBoost's internal generator, so a job that checkpoints refuses them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from shipyard.core.artifacts import predict_positive
from shipyard.core.errors import ConfigError
from shipyard.train.frameworks.base import OnRound, Trainer, TrainingData

DEFAULTS: dict[str, Any] = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 2,
    "max_bin": 128,
}
RESERVED = {
    "seed": "seed",
    "random_state": "seed",
    "nthread": "threads",
    "n_jobs": "threads",
    "num_boost_round": "num_rounds",
    "n_estimators": "num_rounds",
    "seed_per_iteration": "seed",
}
# Parameters that draw from XGBoost's internal generator (see the module docstring).
_UNRESUMABLE: dict[str, Callable[[Any], bool]] = {
    "colsample_bylevel": lambda v: v != 1,
    "colsample_bynode": lambda v: v != 1,
    "sampling_method": lambda v: v != "uniform",
    "booster": lambda v: v != "gbtree",
}
# Two names for one parameter: a default gives way when the spec sets the other name.
_ALIASES = {"eta": "learning_rate", "gamma": "min_split_loss", "lambda": "reg_lambda"}
_ALIASES |= {v: k for k, v in _ALIASES.items()} | {"alpha": "reg_alpha", "reg_alpha": "alpha"}
_UNUSED = re.compile(r"Parameters: \{(.*)\} are not used")


class XGBoostTrainer(Trainer):
    framework = "xgboost"

    @property
    def framework_version(self) -> str:
        import xgboost as xgb

        return str(xgb.__version__)

    def params(self) -> dict[str, Any]:
        given = self.spec.hyperparameters
        kept = {k: v for k, v in DEFAULTS.items() if _ALIASES.get(k) not in given}
        return {**kept, **given}

    def check(self) -> None:
        self._refuse_reserved(RESERVED)
        params = self.params()
        for name, key in (("subsample", "subsample"), ("colsample_bytree", "colsample_bytree")):
            value = params.get(key, 1.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise ConfigError(f"hyperparameter {name!r} must be in (0, 1], got {value!r}")
        if params.get("objective") != "binary:logistic":
            raise ConfigError(
                f"hyperparameter 'objective' must be 'binary:logistic' (the model scores a "
                f"probability), got {params.get('objective')!r}"
            )
        if self.spec.checkpoint_interval:
            for name, is_random in _UNRESUMABLE.items():
                if name in params and is_random(params[name]):
                    raise ConfigError(
                        f"hyperparameter {name}={params[name]!r} draws from XGBoost's internal "
                        "random state, which a checkpoint cannot carry; remove it or set "
                        "checkpoint_interval: 0"
                    )
        self._dry_run(params)

    def _dry_run(self, params: dict[str, Any]) -> None:
        """One round on two rows: XGBoost's own checks of names and values, as one line."""
        import xgboost as xgb

        tiny = xgb.DMatrix(np.array([[0.0], [1.0]], dtype=np.float32), label=np.array([0.0, 1.0]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                booster = xgb.Booster({**self._native(params), "validate_parameters": True}, [tiny])
                booster.update(tiny, 0)
            except xgb.core.XGBoostError as exc:
                message = re.sub(r"^\[[\d:]+\] \S+: ", "", str(exc).strip().splitlines()[0])
                raise ConfigError(f"hyperparameters: XGBoost refuses them: {message}") from None
        for warning in caught:
            unused = _UNUSED.search(" ".join(str(warning.message).split()))
            if unused:
                names = unused.group(1).replace('"', "").strip()
                raise ConfigError(f"hyperparameters: XGBoost does not know {names}")

    def _native(self, params: dict[str, Any]) -> dict[str, Any]:
        """What XGBoost itself is given: sampling removed (Shipyard draws it), seed and threads."""
        native = {k: v for k, v in params.items() if k not in ("subsample", "colsample_bytree")}
        return {**native, "seed": self.spec.seed, "nthread": self.threads}

    def start(self, data: TrainingData, checkpoint: bytes | None) -> None:
        import xgboost as xgb

        params = self.params()
        self._subsample = float(params.get("subsample", 1.0))
        n_features = data.x.shape[1]
        colsample = float(params.get("colsample_bytree", 1.0))
        self._n_columns = max(1, int(round(colsample * n_features)))
        native = self._native(params)
        if self._n_columns < n_features:
            # Asking for K + 0.5 columns: XGBoost truncates to K, and only K have weight > 0.
            native["colsample_bytree"] = (self._n_columns + 0.5) / n_features
        self._rows = data.x.shape[0]
        # The bins are cut here, from every row unweighted: a plain DMatrix would cut them at
        # the first update with that round's sample weights, which a resume does not repeat.
        self._dtrain = xgb.QuantileDMatrix(
            data.x,
            label=data.y,
            feature_names=data.feature_names,
            max_bin=int(params.get("max_bin", 256)),
            nthread=self.threads,
        )
        model = None if checkpoint is None else bytearray(checkpoint)
        self._booster = xgb.Booster(native, [self._dtrain], model_file=model)
        self.rounds_done = self._booster.num_boosted_rounds()

    def train(self, rounds: int, on_round: OnRound) -> None:
        for _ in range(rounds):
            self._sample(self.rounds_done)
            self._booster.update(self._dtrain, self.rounds_done)
            self.rounds_done += 1
            if on_round(self.rounds_done):
                return

    def _sample(self, round_index: int) -> None:
        rng = np.random.default_rng([self.spec.seed, round_index])
        if self._subsample < 1.0:
            rows = np.less(rng.random(self._rows, dtype=np.float32), self._subsample)
            self._dtrain.set_weight(rows.astype(np.float32))
        n_features = self._dtrain.num_col()
        if self._n_columns < n_features:
            weights = np.zeros(n_features, dtype=np.float32)
            weights[rng.choice(n_features, self._n_columns, replace=False)] = 1.0
            self._dtrain.set_info(feature_weights=weights)

    def checkpoint(self) -> bytes:
        return bytes(self._booster.save_raw(raw_format="ubj"))

    def artifact(self) -> bytes:
        return self.checkpoint()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return predict_positive("xgboost", self._booster, x)
