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
        scores = _predict_dense(model, matrix)
    elif framework == "lightgbm":
        scores = model.predict(matrix, num_threads=1)
    else:
        scores = model.predict_proba(matrix)[:, 1]
    return np.asarray(scores, dtype=np.float32)


# inplace_predict's own arguments, as its wrapper encodes them: values, no margin, all trees,
# NaN as missing.
_PREDICT_ARGS = (
    b'{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, '
    b'"missing": NaN, "strict_shape": false, "cache_id": 0}'
)
_FLOAT32 = np.dtype(np.float32)
# A read-only C-contiguous matrix's __array_interface__ (address, rows, columns, typestr).
_INTERFACE = (
    b'{"data": [%d, true], "shape": [%d, %d], "strides": null, "typestr": "%s", "version": 3}'
)


def _predict_dense(booster: Any, matrix: np.ndarray) -> np.ndarray:
    """``booster.inplace_predict(matrix)`` through XGBoost's C API.

    The Python wrapper spends ~60 µs a call (it defines a class, encodes JSON twice, imports)
    on top of the trees: as much as scoring a request's few rows. A float32 C-contiguous
    matrix, what the feature prep makes, goes straight to the same C function the wrapper
    calls; anything else (another booster-like object, another matrix, any shape the booster
    would refuse) goes through the wrapper.
    """
    import ctypes

    from xgboost import core

    if (
        not isinstance(booster, core.Booster)
        or type(matrix) is not np.ndarray
        or matrix.dtype != _FLOAT32
        or matrix.ndim != 2
        or not matrix.flags.c_contiguous
        or len(matrix) == 0
        or matrix.shape[1] != booster.num_features()
    ):
        return np.asarray(booster.inplace_predict(matrix))
    rows, columns = matrix.shape
    shape = ctypes.POINTER(ctypes.c_uint64)()  # XGBoost's bst_ulong
    dims = ctypes.c_uint64()
    scores = ctypes.POINTER(ctypes.c_float)()
    core._check_call(
        core._LIB.XGBoosterPredictFromDense(
            booster.handle,
            _INTERFACE % (matrix.ctypes.data, rows, columns, matrix.dtype.str.encode()),
            _PREDICT_ARGS,
            None,
            ctypes.byref(shape),
            ctypes.byref(dims),
            ctypes.byref(scores),
        )
    )
    dimensions = tuple(int(shape[axis]) for axis in range(dims.value))
    # The scores live in the booster's buffer, which its next call overwrites: copy them.
    return np.ctypeslib.as_array(scores, dimensions).copy()
