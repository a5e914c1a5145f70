"""A Spark job's input, read by Spark: the Spark twin of ``data.load_input``.

Spark reads the job's Parquet files itself (``spark.read.parquet`` of their URLs: ``file://``
here; on S3 the same code reads ``s3a://`` URLs once the cluster has ``hadoop-aws`` and its
credentials, which Shipyard does not configure), and joins the labels when the spec names
them. Each row keeps its input file and position (:data:`FILE`, :data:`POSITION`), which order
ties in the time split as the local reader's row order does.

The driver still hashes every input file (streamed, one file at a time), so the job records
exactly which bytes it trained on and a resumed job refuses changed data.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataError
from shipyard.storage import content_hash, sha256_hex
from shipyard.train.data import (
    DATASET_ID,
    InputSource,
    check_join_columns,
    check_unchanged,
    dataset_parquet_keys,
    parquet_files,
)
from shipyard.train.spec import TrainSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from shipyard.storage import MetadataStore, ObjectStore

FILE, POSITION = "_shipyard_file", "_shipyard_position"
_HASH_CHUNK = 8 << 20


def read_input(
    spark: SparkSession, meta: MetadataStore, store: ObjectStore, spec: TrainSpec
) -> tuple[DataFrame, tuple[InputSource, ...]]:
    """The spec's dataset (joined with its labels) as a Spark DataFrame, and its sources."""
    events, source = _read(spark, meta, store, spec.dataset, "dataset")
    sources = [source]
    if spec.labels is not None:
        labels, labels_source = _read(spark, meta, store, spec.labels, "labels")
        events = _join_labels(events, labels, spec)
        sources.append(labels_source)
    return events, tuple(sources)


def from_polars(spark: SparkSession, frame: Any) -> DataFrame:
    """An in-memory Polars frame as Spark rows, its row order kept for the time split."""
    import polars as pl

    ordered = frame.with_columns(
        pl.lit("").alias(FILE), pl.int_range(pl.len(), dtype=pl.Int64).alias(POSITION)
    )
    return spark.createDataFrame(ordered.to_arrow())


def _read(
    spark: SparkSession, meta: MetadataStore, store: ObjectStore, ref: str, field: str
) -> tuple[DataFrame, InputSource]:
    from pyspark.sql import functions as F

    urls, source = _files(meta, store, ref, field)
    frame = spark.read.parquet(*urls)
    # Before any shuffle: the file and the position in it order ties of the time split.
    frame = frame.withColumn(FILE, F.input_file_name()).withColumn(
        POSITION, F.monotonically_increasing_id()
    )
    rows = frame.count()
    return frame, InputSource(
        source.field, source.ref, source.uri, source.sha256, rows, source.dataset_id
    )


def _files(
    meta: MetadataStore, store: ObjectStore, ref: str, field: str
) -> tuple[list[str], InputSource]:
    """The Parquet file URLs of ``ref`` and its source record (rows counted later)."""
    if DATASET_ID.fullmatch(ref):
        info, keys = dataset_parquet_keys(meta, store, ref, field)
        sha = content_hash([(k, sha256_hex(store.get_bytes(k))) for k in keys])
        check_unchanged(info, field, sha)
        return [store.url(k) for k in keys], InputSource(field, ref, info.uri, sha, 0, ref)
    fs, paths = parquet_files(ref, field)
    parts = [(name, _sha256_of(fs, path)) for name, path in paths]
    urls = [fs.unstrip_protocol(path) for _, path in paths]
    return urls, InputSource(field, ref, ref, content_hash(parts), 0)


def _sha256_of(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _join_labels(events: DataFrame, labels: DataFrame, spec: TrainSpec) -> DataFrame:
    from pyspark.sql import functions as F

    key = spec.join_on
    check_join_columns(events.columns, labels.columns, spec)
    if labels.groupBy(key).count().where(F.col("count") > 1).limit(1).count():
        raise DataError(f"field 'labels': {key!r} values repeat; each event needs one label")
    joined = events.join(labels.select(key, spec.label), on=key, how="inner")
    if joined.limit(1).count() == 0:
        raise DataError(f"no event of 'dataset' has a label in 'labels' (joined on {key!r})")
    return joined
