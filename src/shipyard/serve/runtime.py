"""In-memory serving state: which loaded model answers which share of an endpoint's traffic.

Scoring takes rows, never bytes: every protocol (SageMaker, Open Inference Protocol, MLflow)
turns its request into a :data:`RowsDecoder` and its response from a :class:`Scored`, so where
and how the rows get scored can change without touching any protocol.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from shipyard.core.artifacts import predict_positive
from shipyard.core.errors import InvalidRequestError, ModelFault
from shipyard.core.interfaces import MetricsSink
from shipyard.core.package import PackagedModel
from shipyard.core.types import Invocation, ModelRef
from shipyard.serve.batching import BatchPolicy, MicroBatcher, batch_policy
from shipyard.serve.codecs import DEFAULT_OUTPUT
from shipyard.serve.errors import TargetError, UnsupportedMediaType

_log = logging.getLogger(__name__)

# Builds a request's rows once the variant is chosen: CSV and positional rows need that
# variant's input signature (column -> 'float' | 'bool' | 'string', in order).
RowsDecoder = Callable[[dict[str, str]], pl.DataFrame]


@dataclass(frozen=True)
class LoadedVariant:
    name: str
    ref: ModelRef
    weight: float
    model: PackagedModel

    @property
    def output_name(self) -> str:
        """The name the package's signature gives its score."""
        output = self.model.manifest.get("signature", {}).get("output")
        return output if isinstance(output, str) and output else DEFAULT_OUTPUT


@dataclass(frozen=True)
class Target:
    """What a request asks for beyond its endpoint: a variant, or a model of a multi-model one."""

    variant: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Scored:
    """One score per row, and which variant and model version produced them."""

    scores: np.ndarray
    variant: str
    ref: ModelRef
    output_name: str
    unseen_categories: int


class EndpointRuntime:
    """Routes requests across variants by weight; the variant set is swapped atomically.

    A request reads ``self._variants`` once, so a swap never leaves it half-routed: requests
    in flight finish on the model they started with, new ones see the new set.
    """

    def __init__(
        self,
        name: str,
        variants: list[LoadedVariant],
        metrics: MetricsSink,
        batching: BatchPolicy | None = None,
    ) -> None:
        self.name = name
        self._metrics = metrics
        self._rng = random.Random()
        self._batching = batching  # None: the process-wide policy
        self._batchers: dict[LoadedVariant, MicroBatcher[_Request, Scored]] = {}
        self.swap(variants)

    def swap(self, variants: list[LoadedVariant]) -> None:
        """Serve ``variants`` from now on; each is warmed up before it takes traffic.

        Callers load the new models first (beside the old ones, which keep serving), so the
        switch itself is one assignment: a request never waits for a model to load.
        """
        if not variants or sum(v.weight for v in variants) <= 0:
            raise InvalidRequestError(f"endpoint {self.name!r} needs a variant with weight > 0")
        for variant in variants:
            warm_up(variant.model)
        self._variants = tuple(variants)
        # Batches in flight keep their own batcher; new requests get fresh ones.
        self._batchers = {}

    @property
    def variants(self) -> tuple[LoadedVariant, ...]:
        return self._variants

    def pick(self, target: Target) -> LoadedVariant:
        """The variant named by ``target``, else one drawn by weight."""
        if target.model is not None:
            raise TargetError(
                f"endpoint {self.name!r} is not a multi-model endpoint; it takes no target "
                f"model (X-Amzn-SageMaker-Target-Model: {target.model!r})"
            )
        variants = self._variants
        if target.variant is not None:
            for variant in variants:
                if variant.name == target.variant:
                    return variant
            names = ", ".join(v.name for v in variants)
            raise TargetError(
                f"endpoint {self.name!r} has no variant {target.variant!r}; variants: {names}"
            )
        if len(variants) == 1:
            return variants[0]
        return self._rng.choices(variants, weights=[v.weight for v in variants])[0]

    async def submit(self, rows: RowsDecoder, target: Target, deadline: float | None) -> Scored:
        """Score a request's rows together with concurrent requests for the same variant."""
        started = time.perf_counter()
        variant = self.pick(target)
        batcher = self._batchers.get(variant)
        if batcher is None:
            batcher = MicroBatcher(
                functools.partial(self._score_batch, variant), self._batching or batch_policy()
            )
            self._batchers[variant] = batcher
        return await batcher.submit(_Request(rows, started, deadline))

    def score(self, rows: RowsDecoder, target: Target, deadline: float | None = None) -> Scored:
        """Score one request's rows on the calling thread (no batching)."""
        started = time.perf_counter()
        outcome = self._score_batch(self.pick(target), [_Request(rows, started, deadline)])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _score_batch(
        self, variant: LoadedVariant, requests: list[_Request]
    ) -> list[Scored | BaseException]:
        """Score requests in one model call; records one metrics sample per request.

        ``deadline`` (``time.monotonic()``) is when a caller stops waiting: scores that come
        later never reach it, so its sample counts them as a 504 model error.
        """
        outcomes: list[Scored | BaseException | None] = [None] * len(requests)
        frames: dict[int, pl.DataFrame] = {}
        for index, request in enumerate(requests):
            try:
                frames[index] = request.rows(variant.model.input_types)
            except (Exception, pl.exceptions.PanicException) as exc:
                outcomes[index] = _as_request_error(exc)
        model_started = time.perf_counter()
        for index, scored in _score_frames(variant, frames).items():
            outcomes[index] = scored
        finished = time.perf_counter()
        model_us = (finished - model_started) * 1e6
        now_s, now_mono = time.time(), time.monotonic()
        done: list[Scored | BaseException] = []
        for request, outcome in zip(requests, outcomes, strict=True):
            assert outcome is not None
            status = 200 if isinstance(outcome, Scored) else _status_of(outcome)
            if status == 200 and request.deadline is not None and now_mono > request.deadline:
                status = 504
            self._metrics.record(
                Invocation(
                    endpoint=self.name,
                    variant=variant.name,
                    status=status,
                    model_latency_us=model_us,
                    overhead_latency_us=max(0.0, (finished - request.started) * 1e6 - model_us),
                    at_s=now_s,
                    is_model_error=status >= 400,
                    unseen_categories=(
                        outcome.unseen_categories if isinstance(outcome, Scored) else 0
                    ),
                    model_version=str(variant.ref),
                )
            )
            done.append(outcome)
        return done


_SYNTHETIC = {"float": 0.0, "bool": False, "string": ""}
_SYNTHETIC_TYPES = {"float": pl.Float64, "bool": pl.Boolean, "string": pl.String}


def warm_up(model: PackagedModel) -> None:
    """Score one synthetic row, so that the first real request does not pay for lazy set-up
    (the booster's predictor, polars' expression plans).

    It skips the package's fault injection on purpose: a drill's faulty model must still get
    to serve. A model that cannot score the row is logged, not refused: real requests then
    answer with its error, which the alarms see.
    """
    types = model.input_types
    row = pl.DataFrame(
        {name: [_SYNTHETIC.get(kind, 0.0)] for name, kind in types.items()},
        schema={name: _SYNTHETIC_TYPES.get(kind, pl.Float64) for name, kind in types.items()},
    )
    try:
        predict_positive(model.framework, model.booster, model.prep.transform(row).matrix)
    except (Exception, pl.exceptions.PanicException) as exc:
        _log.warning(
            "warm-up of a %s model failed: %s: %s", model.framework, type(exc).__name__, exc
        )


@dataclass(frozen=True)
class _Request:
    rows: RowsDecoder
    started: float  # time.perf_counter() when the runtime got it
    deadline: float | None


def _score_frames(
    variant: LoadedVariant, frames: dict[int, pl.DataFrame]
) -> dict[int, Scored | BaseException]:
    """All frames in one model call; if that call fails, each frame alone, so that only the
    requests that cause a failure see it."""
    if len(frames) > 1:
        try:
            batch = pl.concat(list(frames.values()), how="vertical")
            scores, unseen = variant.model.score(batch)
            scores = np.asarray(scores)
        except (Exception, pl.exceptions.PanicException):
            pass
        else:
            has_unseen = sum(unseen.values()) > 0
            results: dict[int, Scored | BaseException] = {}
            offset = 0
            for index, frame in frames.items():
                # Unseen categories are counted per call; only a batch that has any pays for
                # counting them per request again.
                count = (
                    sum(variant.model.prep.transform(frame).unseen_counts.values())
                    if has_unseen
                    else 0
                )
                part = scores[offset : offset + len(frame)]
                results[index] = Scored(part, variant.name, variant.ref, variant.output_name, count)
                offset += len(frame)
            return results
    results = {}
    for index, frame in frames.items():
        try:
            scores, unseen = variant.model.score(frame)
            results[index] = Scored(
                np.asarray(scores),
                variant.name,
                variant.ref,
                variant.output_name,
                sum(unseen.values()),
            )
        except (Exception, pl.exceptions.PanicException) as exc:
            results[index] = _as_model_error(exc)
    return results


def _as_request_error(exc: BaseException) -> BaseException:
    """A decoder's error: the request's fault when it says so, else the model's."""
    return exc if isinstance(exc, InvalidRequestError) else _as_model_error(exc)


def _as_model_error(exc: BaseException) -> BaseException:
    if isinstance(exc, InvalidRequestError | ModelFault):
        return exc
    # The model itself broke: a ModelError, never a bare 500 (a polars panic is a
    # BaseException, so it is named by the callers or it would escape as one).
    fault = ModelFault(f"the model failed: {type(exc).__name__}: {exc}")
    fault.__cause__ = exc
    return fault


def _status_of(error: BaseException) -> int:
    if isinstance(error, UnsupportedMediaType):
        return 415
    return 400 if isinstance(error, InvalidRequestError) else 500
