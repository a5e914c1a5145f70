"""Data drift: every feature of current data tested against a reference, plus a dataset verdict.

Example::

    detector = DriftDetector().fit(pl.read_parquet("reference.parquet"))
    report = detector.score(pl.read_parquet("today.parquet"))
    report.dataset_drift, [c.name for c in report.drifted]

The default method per column is Evidently's (``get_stattest`` in its stattests registry), so a
verdict here and in Evidently's DataDriftPreset agree:

==========================  ===========================  =====================================
reference rows (non-null)   numerical, > 5 values         categorical, or numerical <= 5 values
==========================  ===========================  =====================================
more than 1000              Wasserstein distance normed  Jensen-Shannon distance, drift when
                            by the reference's std,      >= 0.1 (natural log, on category
                            drift when >= 0.1            shares)
1000 or fewer               Kolmogorov-Smirnov p-value,  chi-square p-value (z-test for two
                            drift when <= 0.05           values), drift when < 0.05
==========================  ===========================  =====================================

"Values" counts the distinct values of both samples together. Distances are used on large data
because p-values are not meaningful at millions of rows: any difference becomes "significant".
Every result reports the raw statistic beside its verdict. The dataset drifts when the share of
drifted columns is at least ``drift_share`` (0.5). Nulls, NaN and infinities are left out of the
tests, as Evidently leaves them out. Booleans and text are categorical; text columns with more
than ``max_categories`` distinct reference values (ids, free text) and temporal columns are
skipped unless named in ``columns``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import polars as pl

from shipyard.core.errors import DataError, InvalidRequestError, NotFittedError
from shipyard.monitor import _drift_stats as stats
from shipyard.monitor._data import Data, collect, scan, schema
from shipyard.monitor._drift_profile import Sample, column_distribution, samples

Skipped = tuple[str, str]  # (column, why it was not tested)
NUMERICAL = "numerical"
CATEGORICAL = "categorical"
SMALL_REFERENCE_ROWS = 1000
FEW_VALUES = 5
# Evidently bins a numeric column for Jensen-Shannon only when it has more distinct values.
BINNED_JS_MIN_VALUES = 20


@dataclass(frozen=True)
class DriftMethod:
    """A drift test: its name, label, default threshold and which side of it is drift."""

    name: str
    label: str
    default_threshold: float
    column_types: frozenset[str]
    is_p_value: bool
    # Evidently's KS calls p == threshold drift, its chi-square and z-test do not.
    is_inclusive: bool = True

    @property
    def drift_side(self) -> str:
        """How a drifted statistic compares with the threshold."""
        if not self.is_p_value:
            return ">="
        return "<=" if self.is_inclusive else "<"

    def is_drift(self, statistic: float, threshold: float) -> bool:
        if math.isnan(statistic):
            return False
        if not self.is_p_value:
            return statistic >= threshold
        return statistic <= threshold if self.is_inclusive else statistic < threshold


_BOTH = frozenset({NUMERICAL, CATEGORICAL})
METHODS: dict[str, DriftMethod] = {
    m.name: m
    for m in (
        DriftMethod(
            "wasserstein", "Wasserstein distance (normed)", 0.1, frozenset({NUMERICAL}), False
        ),
        DriftMethod("jensenshannon", "Jensen-Shannon distance", 0.1, _BOTH, False),
        DriftMethod("ks", "K-S p_value", 0.05, frozenset({NUMERICAL}), True),
        DriftMethod("chisquare", "chi-square p_value", 0.05, _BOTH, True, is_inclusive=False),
        DriftMethod("z", "Z-test p_value", 0.05, _BOTH, True, is_inclusive=False),
    )
}


def default_method(column_type: str, reference_rows: int, n_values: int) -> str:
    """Evidently's choice for a column of this type, reference size and distinct values."""
    many_values = column_type == NUMERICAL and n_values > FEW_VALUES
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if many_values:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    return "wasserstein" if many_values else "jensenshannon"


@dataclass(frozen=True)
class ColumnDrift:
    """One feature's test: the raw statistic, the threshold and the verdict."""

    name: str
    column_type: str
    method: str
    statistic: float
    threshold: float
    drift_detected: bool
    reference_rows: int
    current_rows: int
    distribution: dict[str, Any]

    @property
    def method_label(self) -> str:
        return METHODS[self.method].label

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "column_type": self.column_type,
            "method": self.method,
            "method_label": self.method_label,
            "statistic": _finite_or_none(self.statistic),
            "threshold": self.threshold,
            "drift_detected": self.drift_detected,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "distribution": self.distribution,
        }


@dataclass(frozen=True)
class DriftReport:
    """Every tested column, the columns left out (with why), and the dataset verdict."""

    columns: tuple[ColumnDrift, ...]
    skipped: tuple[Skipped, ...]
    drift_share: float
    reference_rows: int
    current_rows: int

    @property
    def drifted(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drift_detected]

    @property
    def share_of_drifted_columns(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        return bool(self.columns) and self.share_of_drifted_columns >= self.drift_share

    def column(self, name: str) -> ColumnDrift:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "number_of_columns": len(self.columns),
            "number_of_drifted_columns": len(self.drifted),
            "share_of_drifted_columns": self.share_of_drifted_columns,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": [c.to_dict() for c in self.columns],
            "skipped": [{"name": name, "reason": reason} for name, reason in self.skipped],
        }


class DriftDetector:
    """Learns a reference in :meth:`fit`; :meth:`score` tests current data against it.

    ``columns`` limits the features (default: every numeric, boolean and text column whose
    name does not start with ``_``); ``categorical`` names numeric columns to treat as
    categories; ``methods`` and ``thresholds`` override the default per column.
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        *,
        categorical: Sequence[str] = (),
        methods: Mapping[str, str] | None = None,
        thresholds: Mapping[str, float] | None = None,
        drift_share: float = 0.5,
        max_categories: int = 1000,
    ) -> None:
        self.columns = None if columns is None else tuple(columns)
        self.categorical = tuple(categorical)
        self.methods = dict(methods or {})
        self.thresholds = dict(thresholds or {})
        self.drift_share = drift_share
        self.max_categories = max_categories

    def get_params(self) -> dict[str, Any]:
        return {
            "columns": None if self.columns is None else list(self.columns),
            "categorical": list(self.categorical),
            "methods": dict(self.methods),
            "thresholds": dict(self.thresholds),
            "drift_share": self.drift_share,
            "max_categories": self.max_categories,
        }

    def fit(self, reference: Data) -> Self:
        """Read the reference once: sorted values of numeric columns, counts of categories."""
        self._check_params()
        lazy = scan(reference, "reference")
        types, skipped = self._column_types(schema(lazy, "reference"))
        frame = collect(lazy, list(types), "reference")
        fitted = samples(frame, types)
        for name in list(fitted):
            sample = fitted[name]
            reason = None
            if sample.rows == 0:
                reason = "no values in the reference"
            elif (
                types[name] == CATEGORICAL
                and self.columns is None
                and len(sample.values) > self.max_categories
            ):
                reason = f"{len(sample.values):,} distinct values (id or free text)"
            if reason is not None:
                skipped.append((name, reason))
                del fitted[name]
        self._check_methods(fitted)
        self.reference_: dict[str, Sample] = fitted
        self.reference_rows_ = frame.height
        self.skipped_ = tuple(skipped)
        return self

    def score(self, current: Data) -> DriftReport:
        """Test every fitted column of ``current`` against the reference."""
        if not hasattr(self, "reference_"):
            raise NotFittedError("DriftDetector is not fitted yet; call fit(reference) first")
        lazy = scan(current, "current")
        self._check_current(schema(lazy, "current"))
        frame = collect(lazy, list(self.reference_), "current")
        types = {name: sample.column_type for name, sample in self.reference_.items()}
        current_samples = samples(frame, types)
        results, skipped = [], list(self.skipped_)
        for name, reference in self.reference_.items():
            sample = current_samples[name]
            if sample.rows == 0:
                skipped.append((name, "no values in the current data"))
                continue
            results.append(self._test(name, reference, sample))
        return DriftReport(
            tuple(results), tuple(skipped), self.drift_share, self.reference_rows_, frame.height
        )

    def _test(self, name: str, reference: Sample, current: Sample) -> ColumnDrift:
        method = METHODS[
            self.methods.get(name)
            or default_method(reference.column_type, reference.rows, reference.n_values(current))
        ]
        threshold = float(self.thresholds.get(name, method.default_threshold))
        statistic = _statistic(method.name, reference, current)
        return ColumnDrift(
            name=name,
            column_type=reference.column_type,
            method=method.name,
            statistic=statistic,
            threshold=threshold,
            drift_detected=method.is_drift(statistic, threshold),
            reference_rows=reference.rows,
            current_rows=current.rows,
            distribution=column_distribution(reference, current),
        )

    def _column_types(self, frame_schema: pl.Schema) -> tuple[dict[str, str], list[Skipped]]:
        names = list(frame_schema.names()) if self.columns is None else list(self.columns)
        missing = [n for n in names if n not in frame_schema]
        if missing:
            raise DataError(
                f"column(s) {', '.join(map(repr, missing))} not in the reference data; "
                f"it has: {', '.join(frame_schema.names())}"
            )
        types: dict[str, str] = {}
        skipped: list[Skipped] = []
        for name in names:
            if self.columns is None and name.startswith("_"):
                continue
            kind = _column_type(frame_schema[name], name in self.categorical)
            if kind is None:
                if self.columns is not None:
                    raise DataError(
                        f"column {name!r} has dtype {frame_schema[name]}; drift is tested on "
                        "numbers, booleans and text only"
                    )
                skipped.append((name, f"dtype {frame_schema[name]} is not tested"))
            else:
                types[name] = kind
        return types, skipped

    def _check_current(self, current_schema: pl.Schema) -> None:
        missing = [n for n in self.reference_ if n not in current_schema]
        if missing:
            raise DataError(
                f"the current data lacks column(s) {', '.join(map(repr, missing))} "
                "that the reference has"
            )
        for name, sample in self.reference_.items():
            kind = _column_type(current_schema[name], name in self.categorical)
            if kind != sample.column_type:
                raise DataError(
                    f"column {name!r} is {sample.column_type} in the reference but has dtype "
                    f"{current_schema[name]} in the current data"
                )

    def _check_params(self) -> None:
        if not 0 < self.drift_share <= 1:
            raise InvalidRequestError(f"drift_share must be in (0, 1], got {self.drift_share!r}")
        for name, threshold in self.thresholds.items():
            if not isinstance(threshold, int | float) or not math.isfinite(threshold):
                raise InvalidRequestError(
                    f"threshold of column {name!r} must be a number, got {threshold!r}"
                )
        unknown = sorted({m for m in self.methods.values() if m not in METHODS})
        if unknown:
            raise InvalidRequestError(
                f"unknown drift method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}"
            )

    def _check_methods(self, fitted: Mapping[str, Sample]) -> None:
        for name, method in self.methods.items():
            sample = fitted.get(name)
            if sample is not None and sample.column_type not in METHODS[method].column_types:
                raise InvalidRequestError(
                    f"method {method!r} cannot test the {sample.column_type} column {name!r}"
                )


def detect_drift(reference: Data, current: Data, **params: Any) -> DriftReport:
    """``DriftDetector(**params).fit(reference).score(current)`` in one call."""
    return DriftDetector(**params).fit(reference).score(current)


def _column_type(dtype: pl.DataType, is_categorical: bool) -> str | None:
    if dtype == pl.Boolean() or isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return CATEGORICAL
    if dtype.is_numeric():
        return CATEGORICAL if is_categorical else NUMERICAL
    return None


def _statistic(method: str, reference: Sample, current: Sample) -> float:
    if method == "wasserstein":
        return stats.normed_wasserstein(reference.values, current.values)
    if method == "ks":
        return stats.ks_pvalue(reference.values, current.values)
    if (
        method == "jensenshannon"
        and reference.column_type == NUMERICAL
        and reference.n_distinct > BINNED_JS_MIN_VALUES
    ):
        return stats.jensen_shannon(*stats.sturges_counts(reference.values, current.values))
    _, p, q = reference.aligned_counts(current)
    if method == "jensenshannon":
        return stats.jensen_shannon(p, q)
    if method == "chisquare":
        return stats.chisquare_pvalue(p, q)
    return stats.z_pvalue(p, q)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
