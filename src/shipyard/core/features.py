"""Feature preparation shared by training and serving, so the two cannot disagree.

A fitted :class:`FeaturePrep` is stored inside the model package; the trainer and the endpoint
both call :meth:`FeaturePrep.transform` on raw events exactly as the stream carries them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import polars as pl

from shipyard.core.errors import InvalidRequestError, NotFittedError
from shipyard.core.record_prep import RecordPrep

# Derived features are named expressions over raw columns. They live here, not in a notebook,
# because serving must compute them identically.
DERIVED_FEATURES: dict[str, pl.Expr] = {
    "log_amount": (pl.col("amount").clip(lower_bound=0.0) + 1.0).log(),
    "amount_to_avg_ratio": pl.col("amount") / (pl.col("avg_amount_30d") + 1.0),
    "txn_velocity_ratio": (pl.col("txn_count_1h") + 1.0) / (pl.col("txn_count_24h") + 1.0),
}


@dataclass(frozen=True)
class PreparedFeatures:
    """A feature matrix plus how many values of each categorical column were never seen."""

    matrix: np.ndarray
    unseen_counts: dict[str, int]


class FeaturePrep:
    """Turns raw events into the model's float matrix.

    Categorical columns become integer codes learned in :meth:`fit` (codes by sorted value);
    a value not seen in training becomes missing (NaN), which the model handles, and is counted.
    Booleans become 0/1; derived features come from :data:`DERIVED_FEATURES`.
    """

    def __init__(
        self,
        numeric: Sequence[str] = (),
        boolean: Sequence[str] = (),
        categorical: Sequence[str] = (),
        derived: Sequence[str] = (),
    ) -> None:
        self.numeric = tuple(numeric)
        self.boolean = tuple(boolean)
        self.categorical = tuple(categorical)
        self.derived = tuple(derived)

    def get_params(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "boolean": list(self.boolean),
            "categorical": list(self.categorical),
            "derived": list(self.derived),
        }

    @property
    def input_columns(self) -> list[str]:
        """Raw event columns the prep reads, in signature order."""
        columns = [*self.numeric, *self.boolean, *self.categorical]
        for name in self.derived:
            for column in DERIVED_FEATURES[name].meta.root_names():
                if column not in columns:
                    columns.append(column)
        return columns

    @property
    def input_types(self) -> dict[str, str]:
        """Raw input column -> 'float' | 'bool' | 'string', the endpoint's input signature."""
        kinds = {c: "bool" for c in self.boolean} | {c: "string" for c in self.categorical}
        return {c: kinds.get(c, "float") for c in self.input_columns}

    def fit(self, frame: pl.DataFrame) -> Self:
        unknown = [name for name in self.derived if name not in DERIVED_FEATURES]
        if unknown:
            raise ValueError(f"unknown derived features {unknown}; known: {list(DERIVED_FEATURES)}")
        self._check_columns(frame)
        self.categories_: dict[str, list[str]] = {
            column: sorted(v for v in frame[column].unique().to_list() if v is not None)
            for column in self.categorical
        }
        self.feature_names_ = [*self.numeric, *self.boolean, *self.categorical, *self.derived]
        self.__dict__.pop("_expressions_", None)
        self.__dict__.pop("_record_prep_", None)
        return self

    def transform(self, frame: pl.DataFrame) -> PreparedFeatures:
        """The float32 feature matrix of ``frame``, columns in ``feature_names_`` order."""
        if not hasattr(self, "categories_"):
            raise NotFittedError("FeaturePrep is not fitted yet; call fit() first")
        self._check_columns(frame)
        _check_types(frame, self.input_types)
        casts, features = self._expressions()
        prepared = frame.with_columns(casts).select(features)
        unseen_counts = {
            column: int(prepared[f"_unseen_{column}"][0]) if len(prepared) else 0
            for column in self.categorical
        }
        # inf arises from e.g. a huge amount over a tiny average, or a value beyond float32
        # (1e100): expected, not a fault, so no overflow warning; the model reads it as missing.
        with np.errstate(over="ignore"):
            matrix = prepared.select(self.feature_names_).to_numpy().astype(np.float32, copy=False)
        matrix[~np.isfinite(matrix)] = np.nan
        return PreparedFeatures(matrix=matrix, unseen_counts=unseen_counts)

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> PreparedFeatures | None:
        """:meth:`transform` of events given as JSON objects, without building a frame (see
        :mod:`shipyard.core.record_prep`); None when the events need the frame path."""
        plan = self._record_prep()
        prepared = None if plan is None else plan.prepare(records)
        return None if prepared is None else PreparedFeatures(*prepared)

    def transform_json(self, body: bytes) -> PreparedFeatures | None:
        """:meth:`transform` of a JSON body of event objects, each with every input field of
        its type or null, decoded straight into the matrix; None for any other body (then
        :meth:`transform_records` or the frame path decides)."""
        plan = self._record_prep()
        prepared = None if plan is None else plan.prepare_json(body)
        return None if prepared is None else PreparedFeatures(*prepared)

    def _record_prep(self) -> RecordPrep | None:
        plan: RecordPrep | None | bool = self.__dict__.get("_record_prep_", False)
        if plan is False:
            if not hasattr(self, "categories_"):
                raise NotFittedError("FeaturePrep is not fitted yet; call fit() first")
            plan = None
            if RecordPrep.supports(self.derived):
                plan = RecordPrep(
                    self.input_types, self.feature_names_, self.categories_, self.derived
                )
            self._record_prep_ = plan
        assert plan is not True
        return plan

    def _expressions(self) -> tuple[list[pl.Expr], list[pl.Expr]]:
        """Casting expressions, then feature and unseen-count expressions (built once)."""
        cached: tuple[list[pl.Expr], list[pl.Expr]] | None = getattr(self, "_expressions_", None)
        if cached is not None:
            return cached
        dtypes = {"float": pl.Float64, "bool": pl.Boolean, "string": pl.String}
        casts = [pl.col(c).cast(dtypes[kind]) for c, kind in self.input_types.items()]
        features = [*(pl.col(c) for c in self.numeric)]
        features += [pl.col(c).cast(pl.Float64) for c in self.boolean]
        for column in self.categorical:
            # An Enum of the training categories maps each value to its index; anything else
            # becomes null (missing) instead of an error.
            enum = pl.Enum(self.categories_[column])
            codes = pl.col(column).cast(enum, strict=False).to_physical().cast(pl.Float64)
            features.append(codes.alias(column))
            unseen = (codes.is_null() & pl.col(column).is_not_null()).sum()
            features.append(unseen.alias(f"_unseen_{column}"))
        features += [DERIVED_FEATURES[n].cast(pl.Float64).alias(n) for n in self.derived]
        self._expressions_ = (casts, features)
        return self._expressions_

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "categories_"):
            raise NotFittedError("FeaturePrep is not fitted yet; call fit() first")
        return {
            **self.get_params(),
            "categories": self.categories_,
            "feature_names": self.feature_names_,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturePrep:
        prep = cls(data["numeric"], data["boolean"], data["categorical"], data["derived"])
        prep.categories_ = {k: list(v) for k, v in data["categories"].items()}
        prep.feature_names_ = list(data["feature_names"])
        return prep

    def _check_columns(self, frame: pl.DataFrame) -> None:
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise InvalidRequestError(
                f"events are missing field(s) {', '.join(missing)}; "
                f"the model reads {', '.join(self.input_columns)}"
            )


def _check_types(frame: pl.DataFrame, kinds: dict[str, str]) -> None:
    """Refuse a column whose values are not of the signature's type, naming it.

    As strict as the data contract: numbers must be numbers (not "12.5" or true), booleans
    must be true/false, categories must be strings; null is always allowed.
    """
    for column, kind in kinds.items():
        dtype = frame.schema[column]
        if dtype == pl.Null:
            continue
        if kind == "float" and dtype.is_numeric():
            continue
        if (kind == "bool" and dtype == pl.Boolean) or (kind == "string" and dtype == pl.String):
            continue
        raise InvalidRequestError(
            f"field {column!r} must be {_KIND_NAMES[kind]}, got {_dtype_name(dtype)} values"
        )


_KIND_NAMES = {"float": "a number", "bool": "true or false", "string": "a string"}


def _dtype_name(dtype: pl.DataType) -> str:
    if dtype == pl.String:
        return "string"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_numeric():
        return "numeric"
    return str(dtype).lower()
