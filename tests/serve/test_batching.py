"""Micro-batching and warm-up: concurrent requests share a model call, keep their own
answers and errors, and a variant is warmed before it takes traffic."""

from __future__ import annotations

import asyncio

import numpy as np
import polars as pl
import pytest

from shipyard.core.errors import ConfigError, InvalidRequestError
from shipyard.monitor import MetricsStore
from shipyard.pipeline import Workspace
from shipyard.serve import EndpointRuntime, Scored, Target
from shipyard.serve.batching import BatchPolicy
from shipyard.train import TrainResult


def _runtime(deployed: Workspace, policy: BatchPolicy) -> tuple[EndpointRuntime, MetricsStore]:
    metrics = MetricsStore()
    variants = list(deployed.endpoints.runtime("fraud").variants)
    return EndpointRuntime("fraud", variants, metrics, batching=policy), metrics


def _rows(frame: pl.DataFrame):  # type: ignore[no-untyped-def]
    return lambda types: frame


async def _submit_all(runtime: EndpointRuntime, decoders: list) -> list[Scored | BaseException]:  # type: ignore[type-arg]
    return await asyncio.gather(
        *(runtime.submit(rows, Target(), None) for rows in decoders), return_exceptions=True
    )


def test_concurrent_requests_share_model_calls_and_keep_their_own_scores(
    deployed: Workspace, trained: TrainResult
) -> None:
    runtime, metrics = _runtime(deployed, BatchPolicy(max_batch_size=8, max_wait_s=0.005))
    events = trained.holdout_events.drop("is_fraud")
    decoders = [_rows(events.slice(i * 2, 2)) for i in range(20)]
    outcomes = asyncio.run(_submit_all(runtime, decoders))
    for i, outcome in enumerate(outcomes):
        assert isinstance(outcome, Scored), outcome
        np.testing.assert_allclose(
            outcome.scores, trained.holdout_scores[i * 2 : i * 2 + 2], atol=1e-6
        )
    batcher = next(iter(runtime._batchers.values()))
    assert batcher.largest_batch == 8  # capped by max_batch_size
    assert batcher.batches == 3  # 8 + 8 + 4
    assert metrics.requests(endpoint="fraud", variant=None, start_s=0, end_s=2e9) == 20


def test_a_bad_request_does_not_fail_its_batch_mates(
    deployed: Workspace, trained: TrainResult
) -> None:
    runtime, metrics = _runtime(deployed, BatchPolicy(max_batch_size=16, max_wait_s=0.005))
    events = trained.holdout_events.drop("is_fraud")
    wrong_type = events.slice(0, 1).with_columns(pl.col("amount").cast(pl.String))

    def refused(types: dict[str, str]) -> pl.DataFrame:
        raise InvalidRequestError("row 1: not CSV")

    decoders = [_rows(events.slice(0, 1)), _rows(wrong_type), refused, _rows(events.slice(1, 1))]
    outcomes = asyncio.run(_submit_all(runtime, decoders))
    assert isinstance(outcomes[0], Scored) and isinstance(outcomes[3], Scored)
    np.testing.assert_allclose(outcomes[0].scores, trained.holdout_scores[:1], atol=1e-6)
    np.testing.assert_allclose(outcomes[3].scores, trained.holdout_scores[1:2], atol=1e-6)
    assert isinstance(outcomes[1], InvalidRequestError) and "amount" in str(outcomes[1])
    assert isinstance(outcomes[2], InvalidRequestError) and "not CSV" in str(outcomes[2])
    assert next(iter(runtime._batchers.values())).batches == 1
    errors = metrics.datapoint(
        "Invocation4XXErrors", ["Sum"], endpoint="fraud", variant=None, start_s=0, end_s=2e9
    )
    assert errors is not None and errors.values["Sum"] == 2


def test_a_variant_is_warmed_up_before_it_takes_traffic(deployed: Workspace) -> None:
    variant = deployed.endpoints.runtime("fraud").variants[0]
    calls: list[int] = []
    booster = variant.model.booster

    class Recording:
        def inplace_predict(self, matrix: np.ndarray) -> np.ndarray:
            calls.append(len(matrix))
            return booster.inplace_predict(matrix)

    variant.model.booster = Recording()
    EndpointRuntime("fraud", [variant], MetricsStore())
    assert calls == [1]  # one synthetic row, scored at swap time, before any request


def test_batch_policy_refuses_nonsense() -> None:
    with pytest.raises(ConfigError, match="max_batch_size"):
        BatchPolicy(max_batch_size=0)
    with pytest.raises(ConfigError, match="max_wait_s"):
        BatchPolicy(max_wait_s=-1)
