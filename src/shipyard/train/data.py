"""A job's input: read it (catalog dataset or Parquet path/URI), check it, split it by time.

Every input is read whole and hashed as it is read, so a job records exactly which bytes it
trained on and a resumed job refuses to continue on data that changed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import fsspec
import numpy as np
import polars as pl

from shipyard.core.errors import DataError, IntegrityError, InvalidRequestError, NotFoundError
from shipyard.core.features import FeaturePrep
from shipyard.storage import content_hash, get_dataset, sha256_hex
from shipyard.train.frameworks.base import Trainer, TrainingData
from shipyard.train.spec import TrainSpec

if TYPE_CHECKING:
    from shipyard.storage import DatasetInfo, MetadataStore, ObjectStore

DATASET_ID = re.compile(r"ds-[0-9a-f]{16}")


@dataclass(frozen=True)
class InputSource:
    """One input as a job records it: what the spec named, where it was read, its hash."""

    field: str  # "dataset" or "labels"
    ref: str
    uri: str
    sha256: str
    rows: int
    dataset_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "ref": self.ref,
            "uri": self.uri,
            "sha256": self.sha256,
            "rows": self.rows,
            "dataset_id": self.dataset_id,
        }


@dataclass(frozen=True)
class TrainingInput:
    frame: pl.DataFrame
    sources: tuple[InputSource, ...]

    @property
    def dataset_ids(self) -> list[str]:
        return [s.dataset_id for s in self.sources if s.dataset_id is not None]


@dataclass(frozen=True)
class PreparedData:
    """The fitted feature prep, the training split as matrices, and the holdout."""

    prep: FeaturePrep
    train: TrainingData
    holdout_x: np.ndarray
    holdout_y: np.ndarray
    holdout_events: pl.DataFrame

    @property
    def train_rows(self) -> int:
        return len(self.train.y)

    @property
    def holdout_rows(self) -> int:
        return len(self.holdout_y)

    def score_holdout(self, trainer: Trainer) -> tuple[np.ndarray, np.ndarray]:
        """(labels, scores) of the holdout rows."""
        return self.holdout_y, trainer.predict(self.holdout_x)


class Prepared(Protocol):
    """What a job trains and evaluates on: :class:`PreparedData`, or its Spark twin
    (:class:`shipyard.train.spark_data.SparkPrepared`) whose rows stay on the executors."""

    @property
    def prep(self) -> FeaturePrep: ...

    @property
    def train(self) -> TrainingData: ...

    @property
    def train_rows(self) -> int: ...

    @property
    def holdout_rows(self) -> int: ...

    def score_holdout(self, trainer: Trainer) -> tuple[np.ndarray, np.ndarray]: ...


def load_input(meta: MetadataStore, store: ObjectStore, spec: TrainSpec) -> TrainingInput:
    """Read ``spec.dataset`` (and ``spec.labels``, joined on ``spec.join_on``) and check them."""
    events, source = _read(meta, store, spec.dataset, "dataset")
    sources = [source]
    if spec.labels is not None:
        labels, labels_source = _read(meta, store, spec.labels, "labels")
        events = _join_labels(events, labels, spec)
        sources.append(labels_source)
    check_frame(events, spec)
    return TrainingInput(events, tuple(sources))


def check_frame(frame: pl.DataFrame, spec: TrainSpec) -> None:
    """Refuse data whose label is not a usable 0/1 label, or that lacks the spec's columns."""
    if spec.label not in frame.columns:
        raise DataError(f"label column {spec.label!r} is missing; columns are {frame.columns}")
    label = frame[spec.label]
    if label.null_count():
        raise DataError(f"label {spec.label!r} has {label.null_count()} null values")
    is_numeric = label.dtype == pl.Boolean or label.dtype.is_numeric()
    if not is_numeric or not label.cast(pl.Float64).is_in([0.0, 1.0]).all():
        raise DataError(f"label {spec.label!r} must hold only 0/1 or true/false values")
    check_both_classes(label, spec.label, "")
    prep = FeaturePrep(spec.numeric, spec.boolean, spec.categorical, spec.derived)
    missing = [c for c in (*prep.input_columns, spec.time_column) if c not in frame.columns]
    if missing:
        raise DataError(f"column(s) {', '.join(missing)} missing from the input")


def check_both_classes(label: pl.Series, name: str, where: str) -> None:
    positives = int(label.cast(pl.Int64).sum() or 0)
    if positives == 0:
        raise DataError(
            f"label {name!r} has no positive examples among {len(label)} rows{where}; "
            "a classifier needs both classes"
        )
    if positives == len(label):
        raise DataError(
            f"label {name!r} is constant (all {len(label)} rows positive{where}); "
            "a classifier needs both classes"
        )


def time_split(frame: pl.DataFrame, spec: TrainSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train on the earlier events, hold out the latest ``holdout_fraction`` by event time.

    The sort is stable: rows with equal times keep their input order, so the split and the
    row order (which row sampling draws on) are the same every time the job reads the data.
    """
    ordered = frame.sort(spec.time_column, maintain_order=True)
    cut = int(len(ordered) * (1.0 - spec.holdout_fraction))
    return ordered.head(cut), ordered.tail(len(ordered) - cut)


def prepare(frame: pl.DataFrame, spec: TrainSpec) -> PreparedData:
    """Split by time, fit the feature prep on the training split, and build both matrices."""
    check_frame(frame, spec)
    train, holdout = time_split(frame, spec)
    check_both_classes(train[spec.label], spec.label, " in the training split")
    check_both_classes(holdout[spec.label], spec.label, " in the holdout; metrics need both")
    prep = FeaturePrep(spec.numeric, spec.boolean, spec.categorical, spec.derived)
    try:
        prep.fit(train)
        x_train = prep.transform(train).matrix
        x_holdout = prep.transform(holdout).matrix
    except InvalidRequestError as exc:
        raise DataError(f"the input does not fit the features: {exc}") from None
    y_train = train[spec.label].cast(pl.Float32).to_numpy()
    return PreparedData(
        prep=prep,
        train=TrainingData(x_train, y_train, list(prep.feature_names_)),
        holdout_x=x_holdout,
        holdout_y=holdout[spec.label].cast(pl.Int32).to_numpy(),
        holdout_events=holdout,
    )


def _read(
    meta: MetadataStore, store: ObjectStore, ref: str, field: str
) -> tuple[pl.DataFrame, InputSource]:
    if DATASET_ID.fullmatch(ref):
        return _read_dataset(meta, store, ref, field)
    fs, paths = parquet_files(ref, field)
    parts = [(name, fs.cat_file(path)) for name, path in paths]
    frame = _parse(parts, ref)
    sha = content_hash([(name, sha256_hex(data)) for name, data in parts])
    return frame, InputSource(field, ref, ref, sha, len(frame))


def parquet_files(ref: str, field: str) -> tuple[Any, list[tuple[str, str]]]:
    """The filesystem and the (name, path) of each Parquet file at ``ref`` (a file or a folder).

    Hidden files (a writer's staging, ``_SUCCESS``) are left out; names are relative to the
    folder, so a dataset's content hash does not depend on where it lies.
    """
    try:
        fs, root = fsspec.url_to_fs(ref)
        is_dir = fs.isdir(root)
        exists = is_dir or fs.isfile(root)
    except (ValueError, ImportError, OSError) as exc:
        raise NotFoundError(f"field {field!r}: cannot open {ref!r}: {exc}") from None
    if not exists:
        raise NotFoundError(
            f"field {field!r}: {ref!r} is neither a dataset id in the catalog (ds-…) "
            "nor a Parquet file or folder"
        )
    if not is_dir:
        return fs, [(root.rsplit("/", 1)[-1], root)]
    base = root.rstrip("/") + "/"
    names = sorted(str(p).removeprefix(base) for p in fs.find(root) if str(p).endswith(".parquet"))
    names = [n for n in names if not is_hidden(n)]
    if not names:
        raise DataError(f"field {field!r}: no Parquet files under {ref!r}")
    return fs, [(name, base + name) for name in names]


def _read_dataset(
    meta: MetadataStore, store: ObjectStore, dataset_id: str, field: str
) -> tuple[pl.DataFrame, InputSource]:
    info, keys = dataset_parquet_keys(meta, store, dataset_id, field)
    parts = [(k, store.get_bytes(k)) for k in keys]
    sha = content_hash([(k, sha256_hex(data)) for k, data in parts])
    check_unchanged(info, field, sha)
    frame = _parse(parts, dataset_id)
    return frame, InputSource(field, dataset_id, info.uri, sha, len(frame), dataset_id)


def dataset_parquet_keys(
    meta: MetadataStore, store: ObjectStore, dataset_id: str, field: str
) -> tuple[DatasetInfo, list[str]]:
    """A catalog dataset's record and the keys of its Parquet files (hidden files left out)."""
    info = get_dataset(meta, dataset_id)
    key = store.key_of(info.uri)
    keys = [key] if key.endswith(".parquet") else store.list_keys(key, ".parquet")
    keys = [k for k in keys if not is_hidden(k.removeprefix(key))]
    if not keys:
        raise DataError(f"field {field!r}: dataset {dataset_id} has no Parquet files at {info.uri}")
    return info, keys


def check_unchanged(info: DatasetInfo, field: str, sha: str) -> None:
    """Refuse a dataset whose files no longer hash to what the catalog recorded."""
    if sha != info.content_hash:
        raise IntegrityError(
            f"field {field!r}: dataset {info.id} at {info.uri} changed since it was recorded "
            f"(content hash {sha[:12]}…, catalog says {info.content_hash[:12]}…)"
        )


def _parse(parts: list[tuple[str, bytes]], ref: str) -> pl.DataFrame:
    frames = []
    for name, data in parts:
        try:
            frames.append(pl.read_parquet(io.BytesIO(data)))
        except (pl.exceptions.PolarsError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{ref}: {name} is not a readable Parquet file: {first}") from None
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def check_join_columns(events: Sequence[str], labels: Sequence[str], spec: TrainSpec) -> None:
    """The columns a label join needs, checked before any data is read (local or Spark)."""
    key = spec.join_on
    for name, columns, needed in (
        ("dataset", events, [key]),
        ("labels", labels, [key, spec.label]),
    ):
        absent = [c for c in needed if c not in columns]
        if absent:
            raise DataError(f"field {name!r}: column(s) {', '.join(absent)} missing")
    if spec.label in events:
        raise DataError(
            f"field 'dataset' already has a {spec.label!r} column; drop 'labels' from the spec"
        )


def _join_labels(events: pl.DataFrame, labels: pl.DataFrame, spec: TrainSpec) -> pl.DataFrame:
    key = spec.join_on
    check_join_columns(events.columns, labels.columns, spec)
    if labels[key].is_duplicated().any():
        raise DataError(f"field 'labels': {key!r} values repeat; each event needs one label")
    joined = events.join(labels.select(key, spec.label), on=key, how="inner", maintain_order="left")
    if joined.is_empty():
        raise DataError(f"no event of 'dataset' has a label in 'labels' (joined on {key!r})")
    return joined


def is_hidden(relative: str) -> bool:
    """Parts starting with '_' or '.' are not data (rejected records, writes in progress)."""
    return any(part.startswith(("_", ".")) for part in relative.strip("/").split("/"))
