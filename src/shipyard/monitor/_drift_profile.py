"""A column reduced to what the drift tests read: sorted values, or counts per category.

All columns of a frame are reduced in one ``collect_all``, so Polars sorts and counts them in
parallel; the tests then touch nothing but these small or sorted arrays.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from shipyard.monitor import _drift_stats as stats

NUMERICAL = "numerical"
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 20
SKEWED_RATIO = 20


@dataclass(frozen=True)
class Sample:
    """One column's non-null, finite values.

    Numerical: ``values`` sorted ascending, ``counts`` None. Categorical: ``values`` the
    distinct values and ``counts`` how often each occurs.
    """

    column_type: str
    values: np.ndarray
    counts: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.values) if self.counts is None else int(self.counts.sum())

    @functools.cached_property
    def n_distinct(self) -> int:
        if self.counts is not None:
            return len(self.values)
        if len(self.values) == 0:
            return 0
        return int(np.count_nonzero(self.values[1:] != self.values[:-1])) + 1

    def distinct(self) -> tuple[np.ndarray, np.ndarray]:
        if self.counts is not None:
            return self.values, self.counts
        return stats.counts_of_sorted(self.values)

    def n_values(self, other: Sample, *, few: int = 5) -> int:
        """Distinct values of both samples together; exact up to ``few``, else a bound above it."""
        if self.n_distinct > few or other.n_distinct > few:
            return max(self.n_distinct, other.n_distinct)
        return len(set(self.distinct()[0].tolist()) | set(other.distinct()[0].tolist()))

    def aligned_counts(self, other: Sample) -> tuple[list[Any], np.ndarray, np.ndarray]:
        """The sorted union of both samples' values, and each sample's counts over it."""
        mine, theirs = self.distinct(), other.distinct()
        keys = sorted(set(mine[0].tolist()) | set(theirs[0].tolist()))
        position = {key: index for index, key in enumerate(keys)}
        aligned = []
        for values, counts in (mine, theirs):
            vector = np.zeros(len(keys), dtype=np.float64)
            vector[[position[v] for v in values.tolist()]] = counts
            aligned.append(vector)
        return keys, aligned[0], aligned[1]


def samples(frame: pl.DataFrame, types: dict[str, str]) -> dict[str, Sample]:
    """Every named column of ``frame`` reduced to a :class:`Sample`, computed in parallel."""
    queries = []
    for name, column_type in types.items():
        column = pl.col(name)
        if frame.schema[name].is_numeric():
            # NaN and infinities are dropped, as Evidently drops them before testing.
            column = column.cast(pl.Float64)
            column = column.filter(column.is_finite())
        if column_type == NUMERICAL:
            queries.append(frame.lazy().select(column.sort().alias("value")))
        else:
            present = frame.lazy().select(column.alias("value")).drop_nulls()
            queries.append(present.group_by("value").len("count"))
    results = pl.collect_all(queries)
    reduced = {}
    for (name, column_type), result in zip(types.items(), results, strict=True):
        values = result.get_column("value").to_numpy()
        if column_type == NUMERICAL:
            reduced[name] = Sample(column_type, values)
        else:
            counts = result.get_column("count").to_numpy().astype(np.int64)
            reduced[name] = Sample(column_type, values, counts)
    return reduced


def column_distribution(reference: Sample, current: Sample) -> dict[str, Any]:
    """What the report draws: shares of both samples in shared bins, or per top category."""
    if reference.counts is None:
        return _histogram(reference.values, current.values)
    return _categories(reference, current)


def _histogram(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    # The 1st to 99th percentile of both: one huge value cannot squash the picture into one bar.
    low = min(_quantile(a, 0.01), _quantile(b, 0.01))
    high = max(_quantile(a, 0.99), _quantile(b, 0.99))
    if high <= low:
        low, high = float(min(a[0], b[0])), float(max(a[-1], b[-1]))
    if high <= low:
        return {"kind": "histogram", "low": low, "high": high, "reference": [1.0], "current": [1.0]}
    # Amounts and balances are skewed: equal-width bins would put nearly everything in the
    # first one, so such columns are binned on a log scale.
    median = _quantile(a, 0.5)
    is_skewed = low >= 0 and median > 0 and high > SKEWED_RATIO * median
    if is_skewed:
        edges = np.expm1(np.linspace(np.log1p(low), np.log1p(high), HISTOGRAM_BINS + 1))
    else:
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    return {
        "kind": "histogram",
        "scale": "log" if is_skewed else "linear",
        "low": low,
        "high": high,
        "reference": _shares(stats.binned_counts(a, edges)),
        "current": _shares(stats.binned_counts(b, edges)),
    }


def _categories(reference: Sample, current: Sample) -> dict[str, Any]:
    keys, p, q = reference.aligned_counts(current)
    order = np.lexsort((-q, -p))[:TOP_CATEGORIES]
    return {
        "kind": "categories",
        "values": [_label(keys[i]) for i in order],
        "reference": _shares(p[order], p.sum()),
        "current": _shares(q[order], q.sum()),
    }


def _quantile(values: np.ndarray, q: float) -> float:
    return float(values[int(q * (len(values) - 1))])


def _shares(counts: np.ndarray, total: float | None = None) -> list[float]:
    total = float(counts.sum()) if total is None else float(total)
    return [round(float(c) / total, 6) for c in counts]


def _label(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
