"""The files of a validation run: finding and reading the input, hashing and syncing the output.

DATA is a Parquet file, a folder of Parquet files (read as one dataset), or a JSON-lines file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import polars as pl

from shipyard.core.errors import DataError
from shipyard.storage import content_hash

PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def input_files(data: Path) -> list[Path]:
    """The files behind ``data``: itself, or the Parquet files under a folder."""
    if data.is_dir():
        files = data_files(data)
        if not files:
            raise DataError(f"{data}: the folder holds no Parquet files (*.parquet)")
        return files
    if not data.is_file():
        raise DataError(f"{data}: no such file or folder")
    if data.suffix not in PARQUET_SUFFIXES + JSONL_SUFFIXES:
        raise DataError(f"{data}: expected a .parquet or .jsonl file, or a folder of Parquet files")
    return [data]


def data_files(folder: Path) -> list[Path]:
    """The Parquet files under ``folder``, in path order."""
    # Parts starting with "_" or "." are not data: the drain's _undecodable/ records,
    # temporary files of writes in progress, Spark's _SUCCESS and .crc files.
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in PARQUET_SUFFIXES
        and p.is_file()
        and not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    )


def scan_data(files: list[Path]) -> pl.LazyFrame:
    """A lazy frame over Parquet or JSON-lines files; unreadable files raise ``DataError``.

    Parquet is streamed, not loaded: only each footer is read here, which is where a truncated
    file shows. Files whose schemas differ are lined up by column name, missing columns null.
    """
    if files[0].suffix not in PARQUET_SUFFIXES:
        return _read_json_lines(files[0]).lazy()
    schemas = [_parquet_schema(path) for path in files]
    if all(schema == schemas[0] for schema in schemas):
        return pl.scan_parquet(files)
    return pl.concat([pl.scan_parquet(path) for path in files], how="diagonal_relaxed")


def _parquet_schema(path: Path) -> dict[str, pl.DataType]:
    try:
        return pl.read_parquet_schema(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise DataError(
            f"{path}: not readable as Parquet (truncated or corrupt?): {one_line(exc)}"
        ) from None


def _read_json_lines(path: Path) -> pl.DataFrame:
    try:
        if path.stat().st_size == 0:
            return pl.DataFrame()
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise DataError(
            f"{path}: not readable as JSON lines (truncated or corrupt?): {one_line(exc)}"
        ) from None


def one_line(exc: BaseException) -> str:
    """An error's message on one line, for errors that quote a library's."""
    return " ".join(str(exc).split()) or type(exc).__name__


def files_digest(data: Path, files: list[Path]) -> str:
    """The content hash of the input: its files' names (relative to ``data``) and sha256s."""
    names = [p.relative_to(data).as_posix() if data.is_dir() else p.name for p in files]
    return content_hash(
        [(name, sha256_file(path)) for name, path in zip(names, files, strict=True)]
    )


def file_parts(key: str, folder: Path) -> list[tuple[str, str]]:
    """(key, sha256) of each data file of a folder published at ``key``."""
    return [
        (f"{key}/{p.relative_to(folder).as_posix()}", sha256_file(p)) for p in data_files(folder)
    ]


def fsync_tree(path: Path) -> None:
    """Flush a file, or a folder and every file in it, to disk (before a rename publishes it)."""
    for each in [path, *path.rglob("*")] if path.is_dir() else [path]:
        fsync_entry(each)


def fsync_entry(path: Path) -> None:
    """Flush one file, or one folder's entries (not the files in it), to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sha256_file(path: Path) -> str:
    """The sha256 of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return digest.hexdigest()
