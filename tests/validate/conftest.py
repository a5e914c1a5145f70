"""One local SparkSession for the validate tests that need it, stopped when the session ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    # Imported here so that the fast tests never pay for importing pyspark.
    from shipyard.validate.spark_engine import get_spark

    session = get_spark()
    yield session
    session.stop()
