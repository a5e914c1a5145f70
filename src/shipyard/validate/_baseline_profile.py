"""The two Polars passes behind ``infer_baseline``: SageMaker statistics and suggested constraints.

Pass one computes every per-column summary (counts, moments, extremes, distinct values, top
values) in one ``select``. Pass two needs pass one's counts and extremes: it sorts each numeric
column once to read the histogram edges and the quantile sample off the sorted values.

A sensitive column gets only its counts (present, missing; distinct for strings). Everything else
is made of its values or can give one away (the mean of one value is that value): moments,
extremes, the distribution's buckets and sketch, the top values, the suggested domain.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import polars as pl

from shipyard.core.errors import DataError

INTEGRAL = "Integral"
FRACTIONAL = "Fractional"
STRING = "String"
UNKNOWN = "Unknown"
_NUMERIC = (INTEGRAL, FRACTIONAL)
_NUMERIC_STATS = ("mean", "sum", "std_dev", "min", "max")

# SageMaker materialises every numeric distribution in 10 buckets; the docs say it is fixed.
N_BUCKETS = 10
# Deequ's default KLL parameters (sketch size k, shrinking factor c), as the container reports.
SKETCH_K = 2048
SKETCH_C = 0.64
# A string column gets a suggested domain when it has at most this many distinct values...
MAX_DOMAIN_SIZE = 50
# ...and they are at most this share of its non-null values, so ids and free text never qualify.
MAX_DOMAIN_SHARE = 0.1
# Categorical buckets keep the most frequent values: enough to list any suggested domain.
MAX_CATEGORICAL_BUCKETS = MAX_DOMAIN_SIZE

MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
    },
}


@dataclass(frozen=True)
class _Column:
    """A data column, where its pass results live, and the type its dtype suggests."""

    name: str
    index: int
    kind: str
    is_sensitive: bool = False

    def key(self, stat: str) -> str:
        # Positional keys: any column name, even one like "3:sum", stays collision-free.
        return f"{self.index}:{stat}"


def profile(
    frame: pl.DataFrame | pl.LazyFrame, sensitive: Collection[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The statistics.json and constraints.json content for ``frame``, in SageMaker's shape;
    the columns named in ``sensitive`` get no statistic made of their values."""
    schema = frame.lazy().collect_schema()
    unknown = sorted(set(sensitive) - set(schema.names()))
    if unknown:
        # A misspelt name would leave the real column's values in the baseline.
        raise DataError(
            f"sensitive column(s) {', '.join(map(repr, unknown))} not in the data; "
            f"it has: {', '.join(schema.names())}"
        )
    columns = [
        _Column(name, index, _kind(name, dtype), name in sensitive)
        for index, (name, dtype) in enumerate(schema.items())
        if not name.startswith("_")
    ]
    if not columns:
        raise DataError(
            "no columns to baseline: the data has none besides '_' metadata columns "
            f"({', '.join(schema.names()) or 'none at all'})"
        )
    # One materialisation, so a lazy source (Parquet, JSON lines) is read once for both passes.
    data = frame.lazy().select([column.name for column in columns]).collect()
    if data.height == 0:
        raise DataError("cannot infer a baseline from 0 rows; give it a sample of the data")
    summary = _summarise(data, columns)
    numeric = [
        c
        for c in columns
        if c.kind in _NUMERIC and summary[c.key("present")] > 0 and not c.is_sensitive
    ]
    distribution = _distributions(data, numeric, summary)
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": data.height},
        "features": [_statistics(c, summary, distribution, data.height) for c in columns],
    }
    constraints = {
        "version": 0.0,
        "features": [_constraints(c, summary, data.height) for c in columns],
        # A copy: callers may edit their baseline without changing the next one.
        "monitoring_config": copy.deepcopy(MONITORING_CONFIG),
    }
    return statistics, constraints


def _summarise(data: pl.DataFrame, columns: list[_Column]) -> dict[str, Any]:
    """Pass one: every column's counts and moments, plus the value counts of string columns."""
    strings = [column for column in columns if column.kind == STRING]
    frames = pl.collect_all(
        [
            data.lazy().select([expr for column in columns for expr in _summary(column)]),
            *(query for column in strings for query in _value_counts(data, column)),
        ]
    )
    summary = frames[0].row(0, named=True)
    for index, column in enumerate(strings):
        top, distinct = frames[1 + 2 * index], frames[2 + 2 * index]
        # The top values of a sensitive column are its values: dropped before they go anywhere.
        summary[column.key("top")] = [] if column.is_sensitive else top.to_dicts()
        summary[column.key("distinct")] = distinct.item()
    return summary


def _kind(name: str, dtype: pl.DataType) -> str:
    if dtype == pl.Null():
        return UNKNOWN
    if dtype.is_integer():
        return INTEGRAL
    if dtype.is_float() or dtype.is_decimal():
        return FRACTIONAL
    if dtype.is_nested() or dtype in (pl.Binary(), pl.Object()):
        raise DataError(
            f"column {name!r} has dtype {dtype}; a baseline covers flat columns only (numbers, "
            "text, booleans, times), as SageMaker's analyzer does; drop or flatten it first"
        )
    # Text, booleans, categoricals and times: the container reads these from CSV/JSON as text.
    return STRING


def _finite(column: _Column) -> pl.Expr:
    # NaN and ±inf count as missing: they have no place in a mean, and JSON cannot encode them.
    value = pl.col(column.name).cast(pl.Float64())
    return pl.when(value.is_finite()).then(value)


def _text(column: _Column) -> pl.Expr:
    # Booleans become "true"/"false", as the container sees them in CSV or JSON input.
    return pl.col(column.name).cast(pl.String())


def _summary(column: _Column) -> list[pl.Expr]:
    key = column.key
    if column.kind == UNKNOWN:
        return [pl.col(column.name).count().alias(key("present"))]
    if column.kind in _NUMERIC:
        value = _finite(column)
        return [
            value.count().alias(key("present")),
            value.sum().alias(key("sum")),
            value.mean().alias(key("mean")),
            # Population standard deviation, as Deequ's StandardDeviation analyzer computes it.
            value.std(ddof=0).alias(key("std_dev")),
            value.min().alias(key("min")),
            value.max().alias(key("max")),
        ]
    return [_text(column).count().alias(key("present"))]


def _value_counts(data: pl.DataFrame, column: _Column) -> list[pl.LazyFrame]:
    """Two small queries: the column's most frequent values, and its number of distinct values."""
    counts = (
        data.lazy().select(_text(column).alias("value")).drop_nulls().group_by("value").len("count")
    )
    # Most frequent first; equal counts in value order, so the output never depends on row order.
    # Polars turns this sort-then-head into a top-k, so a column of ids costs no full sort.
    top = counts.sort(["count", "value"], descending=[True, False]).head(MAX_CATEGORICAL_BUCKETS)
    return [top, counts.select(pl.len())]


def _sample_positions(n_present: int) -> list[int]:
    """Ranks of the sketch sample: every value up to SKETCH_K of them, else SKETCH_K even ranks."""
    if n_present <= SKETCH_K:
        return list(range(n_present))
    return [round(j * (n_present - 1) / (SKETCH_K - 1)) for j in range(SKETCH_K)]


def _bucket_edges(low: float, high: float) -> list[float]:
    width = (high - low) / N_BUCKETS
    return [low + width * i for i in range(N_BUCKETS)] + [high]


def _distributions(
    data: pl.DataFrame, numeric: list[_Column], summary: dict[str, Any]
) -> dict[str, Any]:
    if not numeric:
        return {}
    exprs = []
    for column in numeric:
        ordered = _finite(column).drop_nulls().sort()
        edges = _bucket_edges(summary[column.key("min")], summary[column.key("max")])
        inner_edges = pl.Series(edges[1:-1], dtype=pl.Float64())
        positions = _sample_positions(summary[column.key("present")])
        exprs += [
            ordered.gather(positions).implode().alias(column.key("sample")),
            # How many values lie below each inner edge; differences give the bucket counts.
            ordered.search_sorted(inner_edges, side="left").implode().alias(column.key("below")),
        ]
    return data.lazy().select(exprs).collect().row(0, named=True)


def _kll(column: _Column, summary: dict[str, Any], distribution: dict[str, Any]) -> dict[str, Any]:
    n_present = summary[column.key("present")]
    edges = _bucket_edges(summary[column.key("min")], summary[column.key("max")])
    below = [0, *distribution[column.key("below")], n_present]
    buckets = [
        {"lower_bound": edges[i], "upper_bound": edges[i + 1], "count": below[i + 1] - below[i]}
        for i in range(N_BUCKETS)
    ]
    sketch = {
        "parameters": {"c": SKETCH_C, "k": float(SKETCH_K)},
        # One level of exact quantiles; below k values this is exactly what KLL itself holds.
        "data": [[float(value) for value in distribution[column.key("sample")]]],
    }
    return {"kll": {"buckets": buckets, "sketch": sketch}}


def _common(column: _Column, summary: dict[str, Any], n_rows: int) -> dict[str, int]:
    n_present = int(summary[column.key("present")])
    return {"num_present": n_present, "num_missing": n_rows - n_present}


def _inferred_type(column: _Column, summary: dict[str, Any]) -> str:
    return column.kind if summary[column.key("present")] > 0 else UNKNOWN


def _statistics(
    column: _Column, summary: dict[str, Any], distribution: dict[str, Any], n_rows: int
) -> dict[str, Any]:
    inferred = _inferred_type(column, summary)
    feature: dict[str, Any] = {"name": column.name, "inferred_type": inferred}
    if inferred in _NUMERIC:
        numbers: dict[str, Any] = {"common": _common(column, summary, n_rows)}
        if not column.is_sensitive:
            numbers.update({stat: float(summary[column.key(stat)]) for stat in _NUMERIC_STATS})
            numbers["distribution"] = _kll(column, summary, distribution)
        feature["numerical_statistics"] = numbers
    elif inferred == STRING:
        buckets = [{"value": t["value"], "count": t["count"]} for t in summary[column.key("top")]]
        feature["string_statistics"] = {
            "common": _common(column, summary, n_rows),
            # A double, as the container writes it (its count of distinct values is approximate).
            "distinct_count": float(summary[column.key("distinct")]),
            "distribution": {"categorical": {"buckets": buckets}},
        }
    return feature


def _constraints(column: _Column, summary: dict[str, Any], n_rows: int) -> dict[str, Any]:
    inferred = _inferred_type(column, summary)
    n_present = summary[column.key("present")]
    feature: dict[str, Any] = {
        "name": column.name,
        "inferred_type": inferred,
        "completeness": n_present / n_rows,
    }
    if inferred in _NUMERIC:
        feature["num_constraints"] = {"is_non_negative": summary[column.key("min")] >= 0}
    elif (
        inferred == STRING
        and not column.is_sensitive
        and _has_small_domain(summary[column.key("distinct")], n_present)
    ):
        domain = sorted(t["value"] for t in summary[column.key("top")])
        feature["string_constraints"] = {"domains": domain}
    return feature


def _has_small_domain(n_distinct: int, n_present: int) -> bool:
    return n_distinct <= MAX_DOMAIN_SIZE and n_distinct <= MAX_DOMAIN_SHARE * n_present
