"""Training fixtures: the session's fraud events as Parquet inputs, and job specs over them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from shipyard.scenarios.fraud import GeneratedEvents
from shipyard.train import TrainSpec


@pytest.fixture(scope="session")
def fraud_frame(fraud_events: GeneratedEvents) -> pl.DataFrame:
    """Events joined with their labels (40,000 rows, about 0.5 % fraud)."""
    events = pl.from_arrow(fraud_events.events)
    labels = pl.from_arrow(fraud_events.labels)
    assert isinstance(events, pl.DataFrame) and isinstance(labels, pl.DataFrame)
    return events.join(labels.select("event_id", "is_fraud"), on="event_id", maintain_order="left")


@pytest.fixture(scope="session")
def fraud_files(tmp_path_factory: pytest.TempPathFactory, fraud_events: GeneratedEvents) -> Path:
    """A folder with events.parquet and labels.parquet, as `shipyard generate` writes them."""
    folder = tmp_path_factory.mktemp("fraud-input")
    events = pl.from_arrow(fraud_events.events)
    labels = pl.from_arrow(fraud_events.labels)
    assert isinstance(events, pl.DataFrame) and isinstance(labels, pl.DataFrame)
    events.write_parquet(folder / "events.parquet")
    labels.write_parquet(folder / "labels.parquet")
    return folder


def job_spec(files: Path, **changes: object) -> TrainSpec:
    """A small job over ``files``: 20 rounds, a checkpoint every 5, two threads."""
    values: dict[str, object] = {
        "dataset": str(files / "events.parquet"),
        "labels": str(files / "labels.parquet"),
        "output_group": "fraud",
        "num_rounds": 20,
        "checkpoint_interval": 5,
        "threads": 2,
        "seed": 3,
        "hyperparameters": {"max_depth": 4},
    }
    values.update(changes)
    return TrainSpec(**values)  # type: ignore[arg-type]
