"""Opening the data a monitoring job reads: Polars frames, or Parquet / JSON-lines paths and
URLs."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import polars as pl

from shipyard.core.errors import DataError

Data = pl.DataFrame | pl.LazyFrame | str | Path
_JSON_LINES = (".jsonl", ".ndjson", ".json")


def scan(data: Data, role: str) -> pl.LazyFrame:
    """A lazy frame over ``data``: a frame, a Parquet file, folder or glob, or a JSON-lines file,
    as a local path, a ``file://`` URL or an object-store URL (``s3://``, ``gs://``, ``az://``:
    Polars reads those itself, with the credentials in the environment).

    ``role`` names the data in errors ("reference", "current", "labels", ...).
    """
    if isinstance(data, pl.DataFrame):
        return data.lazy()
    if isinstance(data, pl.LazyFrame):
        return data
    if isinstance(data, str):
        url = urlsplit(data)
        if url.scheme == "file":
            data = url2pathname(url.path)
        elif len(url.scheme) > 1:  # one letter is a Windows drive, not a scheme
            return _scan_file(data, data)
    path = Path(data)
    text = str(path)
    if glob.has_magic(text):
        if not glob.glob(text, recursive=True):
            raise DataError(f"{role} data {text!r} matches no file; check the pattern")
    elif not path.exists():
        raise DataError(f"{role} data {text!r} does not exist; give a Parquet file or folder")
    return _scan_file(path, text)


def _scan_file(source: str | Path, text: str) -> pl.LazyFrame:
    if Path(urlsplit(text).path).suffix.lower() in _JSON_LINES:
        return pl.scan_ndjson(source)
    return pl.scan_parquet(source)


def collect(frame: pl.LazyFrame, columns: Sequence[str], role: str) -> pl.DataFrame:
    """The named columns, read once; unreadable input becomes a one-line ``DataError``."""
    try:
        return frame.select(columns).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read the {role} data: {first}") from None


def schema(frame: pl.LazyFrame, role: str) -> pl.Schema:
    try:
        return frame.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read the {role} data: {first}") from None
