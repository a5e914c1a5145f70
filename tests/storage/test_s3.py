"""The object store on S3 through s3fs, against moto's S3 server on loopback."""

from __future__ import annotations

import polars as pl
import pytest

from shipyard.core.errors import IntegrityError
from shipyard.storage import ObjectStore


def test_s3_store_puts_lists_and_verifies(s3_endpoint: str) -> None:
    store = ObjectStore(
        "s3://shipyard-test/home",
        client_kwargs={"endpoint_url": s3_endpoint},
        use_listings_cache=False,
    )
    assert not store.is_local
    sha = store.put_bytes("models/m/package.json", b'{"a": 1}')
    assert store.get_bytes("models/m/package.json", sha256=sha) == b'{"a": 1}'
    store.put_parquet("landing/s/dt=2026-11-01/part.parquet", pl.DataFrame({"x": [1, 2]}))
    keys = store.list_keys("landing", ".parquet")
    assert keys == ["landing/s/dt=2026-11-01/part.parquet"]
    assert store.scan_parquet(keys).collect()["x"].to_list() == [1, 2]
    with pytest.raises(IntegrityError):
        store.get_bytes("models/m/package.json", sha256="0" * 64)
