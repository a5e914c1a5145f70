"""Bytes at keys under one root URL: a local folder by default, S3 through s3fs at scale."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from shipyard.core.errors import ConfigError, IntegrityError, NotFoundError, StorageError

if TYPE_CHECKING:
    import polars as pl


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ObjectStore:
    """Atomic puts and reads of whole objects under ``root_url``.

    Keys are '/'-separated relative paths such as ``landing/fraud/dt=2026-11-01/part.parquet``.
    A put is all-or-nothing: on local disk the bytes go to a temporary file that is fsynced
    and renamed into place; on S3 a single PUT is atomic by itself.
    """

    def __init__(self, root_url: str, **storage_options: Any) -> None:
        try:
            fs, root = fsspec.url_to_fs(root_url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"object store URL {root_url!r} is not usable: {exc}") from exc
        self.fs = fs
        self.root = root.rstrip("/")
        self.root_url = root_url.rstrip("/")
        self.is_local = isinstance(fs, LocalFileSystem)
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        """The filesystem path of ``key`` (for engines that take an fsspec path)."""
        check_key(key)
        return f"{self.root}/{key}"

    def url(self, key: str) -> str:
        return f"{self.root_url}/{check_key(key)}"

    def key_of(self, url: str) -> str:
        """Inverse of :meth:`url`."""
        prefix = self.root_url + "/"
        if not url.startswith(prefix):
            raise NotFoundError(f"{url!r} is not inside the object store {self.root_url!r}")
        return url[len(prefix) :]

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` atomically and return its sha256."""
        path = self.path(key)
        try:
            if self.is_local:
                _atomic_local_write(path, data)
            else:
                self.fs.pipe_file(path, data)
        except OSError as exc:
            raise StorageError(f"could not write {self.url(key)}: {exc}") from exc
        return sha256_hex(data)

    def get_bytes(self, key: str, *, sha256: str | None = None) -> bytes:
        """Read ``key``; with ``sha256`` given, refuse bytes that do not match it."""
        try:
            data: bytes = self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise NotFoundError(f"no object at {self.url(key)}") from None
        except OSError as exc:
            raise StorageError(f"could not read {self.url(key)}: {exc}") from exc
        if sha256 is not None:
            actual = sha256_hex(data)
            if actual != sha256:
                raise IntegrityError(
                    f"{self.url(key)} has sha256 {actual[:12]}…, expected {sha256[:12]}…; "
                    "the object was changed after it was recorded and will not be loaded"
                )
        return data

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def list_keys(self, prefix: str, suffix: str = "") -> list[str]:
        """Keys under ``prefix`` (recursively) ending in ``suffix``, sorted."""
        base = self.path(prefix.rstrip("/"))
        if not self.fs.exists(base):
            return []
        found = self.fs.find(base)
        root = self.root + "/"
        keys = []
        for path in found:
            path = str(path)
            key = path[len(root) :] if path.startswith(root) else path
            if key.endswith(suffix) and "/." not in "/" + key:
                keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove one object; a missing one is not an error (deletes are retried after crashes)."""
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm_file(path)

    def delete_prefix(self, prefix: str) -> None:
        base = self.path(prefix.rstrip("/"))
        if self.fs.exists(base):
            self.fs.rm(base, recursive=True)

    def put_parquet(self, key: str, frame: pl.DataFrame) -> str:
        """Write ``frame`` as one Parquet object (zstd) atomically; returns its sha256."""
        # Level 1 writes ~25 % faster than the default 3 for ~5 % more bytes on event data.
        options: dict[str, Any] = {
            "compression": "zstd",
            "compression_level": 1,
            "statistics": True,
        }
        if self.is_local:
            # Straight to the temporary file: no in-memory copy of a file of hundreds of MB.
            path = self.path(key)
            try:
                _atomic_local_write(path, lambda tmp: frame.write_parquet(tmp, **options))
            except OSError as exc:
                raise StorageError(f"could not write {self.url(key)}: {exc}") from exc
            return _file_sha256(path)
        buffer = io.BytesIO()
        frame.write_parquet(buffer, **options)
        return self.put_bytes(key, buffer.getvalue())

    def scan_parquet(self, keys: list[str]) -> pl.LazyFrame:
        """A lazy frame over the Parquet objects at ``keys``."""
        import polars as pl

        if not keys:
            raise NotFoundError("no Parquet objects to read")
        if self.is_local:
            return pl.scan_parquet([self.path(k) for k in keys])
        frames = [pl.read_parquet(io.BytesIO(self.get_bytes(k))).lazy() for k in keys]
        return pl.concat(frames, how="diagonal_relaxed")


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"object key {key!r} is not a plain relative path")
    return key


def _atomic_local_write(path: str, data: bytes | Callable[[str], object]) -> None:
    """Write ``data`` (or let ``data(tmp_path)`` write the file), fsync, then rename into place."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        if callable(data):
            data(tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        else:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
