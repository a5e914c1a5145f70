"""A Spark job's input prepared on the executors: the Spark twin of ``data.prepare``.

The label checks, the time split and the package's feature preparation are Spark column
expressions over the rows :mod:`shipyard.train.spark_input` read, so rows never pass through
the driver; the driver only collects what is small: row counts, the cut point of the time
split, each categorical column's training values (the codes of the package's
``FeaturePrep``), and at the end the holdout's labels and scores.

The feature matrix is the one :meth:`FeaturePrep.transform` builds with Polars: the same
category codes, derived features (:data:`SPARK_DERIVED_FEATURES` mirrors
:data:`shipyard.core.features.DERIVED_FEATURES`), column order, float32 values with
inf/NaN as missing; ``tests/train/test_spark_training.py`` compares the two on the same rows.

The split is the local one too: rows sorted by event time, ties kept in input order (input
file name, then position in the file), the earliest ``1 - holdout_fraction`` trained on. The
position is Spark's ``monotonically_increasing_id`` at the scan, which follows the file's row
order as long as Spark reads a file in one split (files under
``spark.sql.files.maxPartitionBytes``, 128 MB by default); beyond that, rows with *equal*
event times may fall on the other side of the cut than a local job would put them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.artifacts import predict_positive
from shipyard.core.errors import DataError
from shipyard.core.features import FeaturePrep
from shipyard.train.frameworks.base import Trainer, TrainingData
from shipyard.train.spark_input import FILE, POSITION
from shipyard.train.spec import TrainSpec

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

LABEL = "_label"


def _derived() -> dict[str, Callable[[], Column]]:
    from pyspark.sql import functions as F

    amount = F.col("amount")
    return {
        "log_amount": lambda: F.log(F.when(amount < 0.0, 0.0).otherwise(amount) + 1.0),
        # try_divide: x / 0 is missing (null), as the local prep's inf/NaN become missing.
        "amount_to_avg_ratio": lambda: F.try_divide(amount, F.col("avg_amount_30d") + 1.0),
        "txn_velocity_ratio": lambda: F.try_divide(
            F.col("txn_count_1h") + 1.0, F.col("txn_count_24h") + 1.0
        ),
    }


SPARK_DERIVED_FEATURES = ("log_amount", "amount_to_avg_ratio", "txn_velocity_ratio")


@dataclass(frozen=True)
class SparkTrainingData(TrainingData):
    """The training split as Spark rows (feature columns + ``_label``); x and y stay empty."""

    frame: Any = None
    rows: int = 0


@dataclass(frozen=True)
class SparkPrepared:
    """The fitted prep and both splits as Spark DataFrames of the prepared features."""

    prep: FeaturePrep
    train: SparkTrainingData
    holdout: Any  # pyspark DataFrame: feature columns + _label
    holdout_rows: int

    @property
    def train_rows(self) -> int:
        return self.train.rows

    def score_holdout(self, trainer: Trainer) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) of the holdout: scored on the executors, only those collected."""
        return score_on_spark(self.holdout, trainer.artifact(), self.train.feature_names)


def score_on_spark(
    frame: DataFrame, model: bytes, feature_names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and XGBoost scores of prepared rows, computed where the rows are."""
    import pyarrow as pa

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import xgboost as xgb

        booster = xgb.Booster(model_file=bytearray(model))
        for batch in batches:
            # Arrow nulls become NaN: missing, as the model reads them in serving.
            x = (
                np.column_stack([_float_column(batch.column(name)) for name in feature_names])
                if batch.num_rows
                else np.empty((0, len(feature_names)), dtype=np.float32)
            )
            scores = predict_positive("xgboost", booster, x)
            yield pa.record_batch(
                [batch.column(LABEL), pa.array(np.asarray(scores, dtype=np.float64))],
                names=[LABEL, "score"],
            )

    with pandas_3_tolerated():
        collected = frame.mapInArrow(score, f"{LABEL} double, score double").toArrow()
    labels = collected.column(LABEL).to_numpy().astype(np.int32)
    return labels, collected.column("score").to_numpy()


@contextlib.contextmanager
def pandas_3_tolerated() -> Iterator[None]:
    """Silence PySpark 4.x's warning that it does not fully support pandas >= 3.

    It warns on every pandas/Arrow UDF; the paths used here (numeric columns to NumPy, Arrow
    batches) work with pandas 3.1, and the Spark tests check their results.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
        yield


def _float_column(column: Any) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float32)


def prepare_on_spark(frame: DataFrame, spec: TrainSpec) -> SparkPrepared:
    """Check, split by time, fit the prep on the training split, and build both feature sets."""
    from pyspark.sql import functions as F

    prep = FeaturePrep(spec.numeric, spec.boolean, spec.categorical, spec.derived)
    _check_columns(frame, spec, prep)
    label = F.col(spec.label).cast("double")
    frame = frame.withColumn(LABEL, label)
    rows, positives = _label_counts(frame, spec)
    cut = int(rows * (1.0 - spec.holdout_fraction))
    in_train = _before_row(frame, spec.time_column, rows, cut)
    train, holdout = frame.where(in_train), frame.where(~in_train)
    # One pass over the training split: its positives, and the categories the prep learns.
    summary = _first(
        train.agg(
            F.sum(LABEL).alias(LABEL),
            *(F.collect_set(c).alias(c) for c in prep.categorical),
        )
    )
    train_positives = int(summary[LABEL] or 0)
    _check_both_classes(train_positives, cut, spec.label, " in the training split")
    _check_both_classes(
        positives - train_positives, rows - cut, spec.label, " in the holdout; metrics need both"
    )
    fitted = fit_prep(prep, {c: summary[c] for c in prep.categorical})
    features = prepared_columns(fitted)
    names = list(fitted.feature_names_)
    train_features = train.select(*features, F.col(LABEL))
    return SparkPrepared(
        prep=fitted,
        train=SparkTrainingData(
            np.empty((0, len(names)), dtype=np.float32),
            np.empty(0, dtype=np.float32),
            names,
            frame=train_features,
            rows=cut,
        ),
        holdout=holdout.select(*features, F.col(LABEL)),
        holdout_rows=rows - cut,
    )


def fit_prep(prep: FeaturePrep, values: dict[str, list[str]]) -> FeaturePrep:
    """``prep`` fitted as :meth:`FeaturePrep.fit` does, from each categorical column's values
    in the training split (Spark collects the distinct ones; nulls are not among them)."""
    unknown = [n for n in prep.derived if n not in SPARK_DERIVED_FEATURES]
    if unknown:
        raise DataError(
            f"derived feature(s) {unknown} have no Spark expression; "
            f"the Spark engine knows {list(SPARK_DERIVED_FEATURES)}"
        )
    categories = {c: sorted(values[c]) for c in prep.categorical}
    return FeaturePrep.from_dict(
        {
            **prep.get_params(),
            "categories": categories,
            "feature_names": [*prep.numeric, *prep.boolean, *prep.categorical, *prep.derived],
        }
    )


def prepared_columns(prep: FeaturePrep) -> list[Column]:
    """Spark expressions of ``prep``'s features, in ``feature_names_`` order, float32."""
    from pyspark.sql import functions as F

    def number(name: str) -> Column:
        return F.col(name).cast("double")

    exprs: dict[str, Column] = {c: number(c) for c in (*prep.numeric, *prep.boolean)}
    for column in prep.categorical:
        # array_position is 1-based and 0 when absent: an unseen value becomes missing.
        where = F.array_position(F.array(*map(F.lit, prep.categories_[column])), F.col(column))
        exprs[column] = F.when(where > 0, (where - 1).cast("double"))
    # Spark promotes the integer counts to double against the 1.0 literals: float64
    # arithmetic, as in the local prep.
    derived = _derived()
    exprs |= {name: derived[name]() for name in prep.derived}
    return [_as_float32(exprs[name]).alias(name) for name in prep.feature_names_]


def _as_float32(expr: Column) -> Column:
    from pyspark.sql import functions as F

    value = expr.cast("float")
    finite = ~F.isnan(value) & (F.abs(value) != float("inf"))
    return F.when(finite, value)


def _check_columns(frame: DataFrame, spec: TrainSpec, prep: FeaturePrep) -> None:
    from pyspark.sql import types as T

    if spec.label not in frame.columns:
        raise DataError(f"label column {spec.label!r} is missing; columns are {frame.columns}")
    missing = [c for c in (*prep.input_columns, spec.time_column) if c not in frame.columns]
    if missing:
        raise DataError(f"column(s) {', '.join(missing)} missing from the input")
    types = {f.name: f.dataType for f in frame.schema.fields}
    for column, kind in prep.input_types.items():
        dtype = types[column]
        ok = {
            "float": isinstance(dtype, T.NumericType | T.NullType),
            "bool": isinstance(dtype, T.BooleanType | T.NullType),
            "string": isinstance(dtype, T.StringType | T.NullType),
        }[kind]
        if not ok:
            raise DataError(
                f"the input does not fit the features: field {column!r} must be "
                f"{_KIND_NAMES[kind]}, got {dtype.simpleString()} values"
            )
    label = types[spec.label]
    if not isinstance(label, T.NumericType | T.BooleanType):
        raise DataError(f"label {spec.label!r} must hold only 0/1 or true/false values")


_KIND_NAMES = {"float": "a number", "bool": "true or false", "string": "a string"}


def _label_counts(frame: DataFrame, spec: TrainSpec) -> tuple[int, int]:
    from pyspark.sql import functions as F

    label = F.col(LABEL)
    counts = _first(
        frame.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(label.isNull().cast("long")).alias("nulls"),
            F.sum((~label.isin(0.0, 1.0)).cast("long")).alias("other"),
            F.sum(label).alias("positives"),
        )
    )
    rows = int(counts["rows"])
    if counts["nulls"]:
        raise DataError(f"label {spec.label!r} has {counts['nulls']} null values")
    if counts["other"]:
        raise DataError(f"label {spec.label!r} must hold only 0/1 or true/false values")
    positives = int(counts["positives"] or 0)
    _check_both_classes(positives, rows, spec.label, "")
    return rows, positives


def _check_both_classes(positives: int, rows: int, name: str, where: str) -> None:
    if positives == 0:
        raise DataError(
            f"label {name!r} has no positive examples among {rows} rows{where}; "
            "a classifier needs both classes"
        )
    if positives == rows:
        raise DataError(
            f"label {name!r} is constant (all {rows} rows positive{where}); "
            "a classifier needs both classes"
        )


def _before_row(frame: DataFrame, time_column: str, rows: int, cut: int) -> Column:
    """True for the ``cut`` first rows in (time, file, position) order: the training split.

    The driver fetches one row, the ``cut``-th in that order (a distributed top-k), and every
    row compares itself with it; nulls sort first, as in the local split.
    """
    from pyspark.sql import functions as F

    keys = [time_column, FILE, POSITION]
    if cut >= rows:
        return F.lit(True)
    boundary = frame.select(*keys).orderBy(*(F.col(k).asc_nulls_first() for k in keys))
    first_held_out = _first(boundary.offset(cut).limit(1))
    before = F.lit(False)
    for i in reversed(range(len(keys))):
        # Lexicographic: equal on the keys before i, and smaller on key i.
        value = first_held_out[keys[i]]
        column = F.col(keys[i])
        smaller = F.lit(False) if value is None else column.isNull() | (column < F.lit(value))
        equal = column.eqNullSafe(F.lit(value))
        before = smaller | (equal & before)
    return F.coalesce(before, F.lit(False))


def _first(frame: DataFrame) -> Any:
    row = frame.first()
    if row is None:  # an aggregate always has a row, and the offset is below the count
        raise RuntimeError("Spark returned no row where one was expected")
    return row
