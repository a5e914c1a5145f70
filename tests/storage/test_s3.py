"""The object store on S3 through s3fs, against moto's S3 server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import polars as pl
import pytest
from moto.server import ThreadedMotoServer

from shipyard.core.errors import IntegrityError
from shipyard.storage import ObjectStore


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="shipyard-test")
    try:
        yield endpoint
    finally:
        server.stop()


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
