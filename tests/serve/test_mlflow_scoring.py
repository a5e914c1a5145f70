"""MLflow's scoring JSON (what `mlflow models serve` takes) on both invocation paths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest

from shipyard.pipeline import BackgroundServer
from shipyard.train import TrainResult

Payload = Callable[[pl.DataFrame], dict[str, Any]]

SHAPES: dict[str, Payload] = {
    "dataframe_split": lambda f: {"dataframe_split": {"columns": f.columns, "data": f.rows()}},
    "dataframe_split_with_index": lambda f: {
        "dataframe_split": {"index": list(range(f.height)), "columns": f.columns, "data": f.rows()}
    },
    "dataframe_records": lambda f: {"dataframe_records": f.to_dicts()},
    "instances_records": lambda f: {"instances": f.to_dicts()},
    "instances_rows": lambda f: {"instances": [list(r) for r in f.rows()]},
    "inputs_columns": lambda f: {"inputs": f.to_dict(as_series=False)},
    "inputs_rows": lambda f: {"inputs": [list(r) for r in f.rows()]},
    "inputs_records_with_params": lambda f: {"inputs": f.to_dicts(), "params": {"k": 1}},
}


@pytest.mark.parametrize("path", ["/invocations", "/endpoints/fraud/invocations"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_mlflow_shapes_score_like_the_trainer(
    server: BackgroundServer, trained: TrainResult, path: str, shape: str
) -> None:
    # Positional shapes (rows, split without names) follow the signature's column order.
    events = trained.holdout_events.head(4).select(list(trained.contents.prep.input_types))
    answer = httpx.post(f"{server.url}{path}", json=SHAPES[shape](events))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    predictions = answer.json()["predictions"]  # MLflow's response: {"predictions": [...]}
    assert [list(p) for p in predictions] == [["fraud_probability"]] * 4
    scores = [p["fraud_probability"] for p in predictions]
    np.testing.assert_allclose(scores, trained.holdout_scores[:4], atol=1e-6)


def test_mlflow_csv_with_a_header(server: BackgroundServer, trained: TrainResult) -> None:
    events = trained.holdout_events.head(3).select(list(trained.contents.prep.input_types))
    shuffled = events.select(list(reversed(events.columns)))  # a header may order the columns
    answer = httpx.post(
        f"{server.url}/invocations",
        content=shuffled.write_csv(),
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    scores = [p["fraud_probability"] for p in answer.json()["predictions"]]
    np.testing.assert_allclose(scores, trained.holdout_scores[:3], atol=1e-6)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instances": [], "inputs": []}, "send exactly one of"),
        ({"inputs": [[1.0, 2.0]]}, "inputs[0] holds 2 values; every row holds 17 values"),
        ({"dataframe_records": [{"amount": 1.0}]}, "missing field(s) card_age_days"),
    ],
)
def test_mlflow_shapes_refused_name_the_problem(
    server: BackgroundServer, payload: dict[str, Any], message: str
) -> None:
    answer = httpx.post(f"{server.url}/invocations", json=payload)
    assert answer.status_code == 424
    assert answer.json()["OriginalStatusCode"] == 400
    assert message in answer.json()["OriginalMessage"]
