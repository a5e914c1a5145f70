"""Shared fixtures: each test gets its own Shipyard home, and PostgreSQL a schema of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import polars as pl
import pytest
import sqlalchemy as sa

from shipyard.core.config import Settings
from shipyard.pipeline import Workspace
from shipyard.scenarios.fraud import FraudScenario, GeneratedEvents
from shipyard.train import TrainResult, TrainSpec, train_xgboost

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pytest_configure(config: pytest.Config) -> None:
    # Rich sizes tables to the terminal, or to 80 columns when none of the standard streams is
    # one (as in pytest-xdist's workers): the CLI tests read whole rows, whatever runs them.
    os.environ["COLUMNS"] = "200"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("HOME", "STORE_URL", "DATABASE_URL", "STREAM_URL"):
        monkeypatch.delenv(f"SHIPYARD_{name}", raising=False)
    return Settings(home=tmp_path / "home")


@pytest.fixture
def workspace(settings: Settings) -> Iterator[Workspace]:
    """A workspace on ``settings`` (embedded defaults in the test's own folder), closed after."""
    opened = Workspace.open(settings)
    yield opened
    opened.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema in the `test` database, dropped afterwards.

    PostgreSQL runs on every development and CI machine: if it is not reachable, this fails.
    """
    schema = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 5})
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server on loopback with bucket ``shipyard-test``; boto3, s3fs and Polars find
    it through the environment."""
    from moto.server import ThreadedMotoServer

    for name, value in (("ACCESS_KEY_ID", "testing"), ("SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(f"AWS_{name}", value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # boto3 and s3fs
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # Polars' own reader
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="shipyard-test")
    try:
        yield endpoint
    finally:
        # moto keeps its buckets per process, not per server: the next test starts empty.
        httpx.post(f"{endpoint}/moto-api/reset")
        server.stop()


@pytest.fixture(scope="session")
def fraud_events() -> GeneratedEvents:
    """Clean fraud-scenario events with their labels (deterministic)."""
    return FraudScenario(seed=3).generate(40_000)


@pytest.fixture(scope="session")
def trained(fraud_events: GeneratedEvents) -> TrainResult:
    """A small XGBoost fraud model trained on raw events joined with their labels."""
    events = pl.from_arrow(fraud_events.events)
    labels = pl.from_arrow(fraud_events.labels)
    assert isinstance(events, pl.DataFrame) and isinstance(labels, pl.DataFrame)
    frame = events.join(labels.select("event_id", "is_fraud"), on="event_id")
    return train_xgboost(frame, TrainSpec(num_rounds=30, seed=1))
