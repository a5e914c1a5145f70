from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from shipyard.core.errors import IntegrityError, NotFoundError, StorageError
from shipyard.storage import ObjectStore, sha256_hex


def test_put_and_get_round_trip_with_sha(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    sha = store.put_bytes("a/b/c.bin", b"payload")
    assert sha == sha256_hex(b"payload")
    assert store.get_bytes("a/b/c.bin", sha256=sha) == b"payload"
    assert store.list_keys("a") == ["a/b/c.bin"]
    assert store.key_of(store.url("a/b/c.bin")) == "a/b/c.bin"


def test_a_changed_object_is_refused(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    sha = store.put_bytes("m.bin", b"model")
    (tmp_path / "m.bin").write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="expected"):
        store.get_bytes("m.bin", sha256=sha)


def test_puts_leave_no_temporary_files(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    for n in range(3):
        store.put_bytes("x/obj.bin", bytes([n]))
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["obj.bin"]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError, match="plain relative path"):
        ObjectStore(tmp_path.as_uri()).put_bytes(key, b"x")


def test_missing_object_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no object"):
        ObjectStore(tmp_path.as_uri()).get_bytes("nope")


def test_parquet_round_trip(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    store.put_parquet("t/one.parquet", frame)
    store.put_parquet("t/two.parquet", frame)
    back = store.scan_parquet(store.list_keys("t", ".parquet")).collect()
    assert back.height == 6
    assert back["b"].null_count() == 2


def test_parquet_puts_are_atomic_and_hashed_like_bytes(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    sha = store.put_parquet("t/x.parquet", pl.DataFrame({"a": [1, 2, 3]}))
    assert sha == sha256_hex((tmp_path / "t" / "x.parquet").read_bytes())
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["x.parquet"]
