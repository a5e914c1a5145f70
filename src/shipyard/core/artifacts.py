"""Model files in each framework's native safe format, and how serving reads them.

=========  ===============  =====================================================
framework  artifact         format
=========  ===============  =====================================================
xgboost    ``model.ubj``    XGBoost's Universal Binary JSON model
lightgbm   ``model.txt``    LightGBM's text model
sklearn    ``model.skops``  skops, loaded only if every type is in the trusted list
=========  ===============  =====================================================

Nothing is ever unpickled: skops refuses types it does not know, and we pass it only the
types in :data:`SKOPS_TRUSTED_TYPES`, after checking that the file asks for no other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.core.errors import IntegrityError, StorageError

FRAMEWORKS = ("xgboost", "lightgbm", "sklearn")
ARTIFACT_NAMES = {"xgboost": "model.ubj", "lightgbm": "model.txt", "sklearn": "model.skops"}

# The types a Shipyard scikit-learn model may contain beyond those skops trusts by default:
# the fitted trees of HistGradientBoostingClassifier, and the dtype objects of the imputer's
# statistics in the logistic-regression pipeline. Anything else in a file is refused.
SKOPS_TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "numpy.dtype",
)


def check_framework(framework: str, where: str) -> str:
    if framework not in FRAMEWORKS:
        raise StorageError(
            f"{where} names framework {framework!r}; Shipyard loads {', '.join(FRAMEWORKS)}"
        )
    return framework


def load_native(framework: str, data: bytes, *, threads: int = 1) -> Any:
    """The framework's model object from its artifact bytes (already sha256-verified)."""
    check_framework(framework, "the model")
    if framework == "xgboost":
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        booster.set_param({"nthread": threads})
        return booster
    if framework == "lightgbm":
        import lightgbm as lgb

        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StorageError(f"the LightGBM model is not text: {exc}") from exc
        return lgb.Booster(model_str=text)
    return load_skops(data)


def load_skops(data: bytes) -> Any:
    """A scikit-learn object from skops bytes, refusing any type outside the trusted list."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises assorted errors on a file that is not skops
        raise StorageError(f"the scikit-learn model is not a skops file: {exc}") from exc
    refused = sorted(set(untrusted) - set(SKOPS_TRUSTED_TYPES))
    if refused:
        raise IntegrityError(
            f"the scikit-learn model asks for types outside Shipyard's trusted list: "
            f"{', '.join(refused)}; it will not be loaded"
        )
    return sio.loads(data, trusted=list(untrusted))


def predict_positive(framework: str, model: Any, matrix: np.ndarray) -> np.ndarray:
    """Probability of the positive class for each row of ``matrix``."""
    if framework == "xgboost":
        scores = model.inplace_predict(matrix)
    elif framework == "lightgbm":
        scores = model.predict(matrix, num_threads=1)
    else:
        scores = model.predict_proba(matrix)[:, 1]
    return np.asarray(scores, dtype=np.float32)
