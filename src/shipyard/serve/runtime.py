"""In-memory serving state: which loaded model answers which share of an endpoint's traffic.

Scoring takes rows, never bytes: every protocol (SageMaker, Open Inference Protocol, MLflow)
turns its request into a :data:`RowsDecoder` and its response from a :class:`Scored`, so where
and how the rows get scored can change without touching any protocol.
"""

from __future__ import annotations

import functools
import gc
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import polars as pl

from shipyard.core.artifacts import predict_positive
from shipyard.core.errors import InvalidRequestError, ModelFault
from shipyard.core.features import FeaturePrep, PreparedFeatures
from shipyard.core.interfaces import MetricsSink
from shipyard.core.package import PackagedModel, injected_fault
from shipyard.core.types import Invocation, ModelRef
from shipyard.serve.batching import BatchPolicy, MicroBatcher, batch_policy
from shipyard.serve.codecs import DEFAULT_OUTPUT, RequestRows
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

    @functools.cached_property
    def output_name(self) -> str:
        """The name the package's signature gives its score."""
        output = self.model.manifest.get("signature", {}).get("output")
        return output if isinstance(output, str) and output else DEFAULT_OUTPUT

    @functools.cached_property
    def input_types(self) -> dict[str, str]:
        return self.model.input_types

    @functools.cached_property
    def version(self) -> str:
        return str(self.ref)

    def scored(self, scores: np.ndarray, features: PreparedFeatures) -> Scored:
        unseen = sum(features.unseen_counts.values())
        return Scored(scores, self.name, self.ref, self.output_name, unseen)


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
                functools.partial(self._score_batch, variant),
                self._batching or batch_policy(),
                _is_small,
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

        ModelLatency covers decoding, feature preparation and scoring of the batch;
        OverheadLatency whatever else passed since the runtime got the request (the wait
        for its batch). ``deadline`` (``time.monotonic()``) is when a caller stops waiting:
        scores that come later never reach it, so its sample counts them as a 504 model error.
        """
        model_started = time.perf_counter()
        outcomes: list[Scored | BaseException | None] = [None] * len(requests)
        prepared: dict[int, PreparedFeatures] = {}
        frames: dict[int, pl.DataFrame] = {}
        signature = variant.input_types
        for index, request in enumerate(requests):
            try:
                fast = _prepare_records(variant.model.prep, request.rows)
                if fast is not None:
                    prepared[index] = fast
                else:
                    frames[index] = request.rows(signature)
            except (Exception, pl.exceptions.PanicException) as exc:
                outcomes[index] = _as_request_error(exc)
        for index, features in _prepare_frames(variant.model.prep, frames).items():
            if isinstance(features, PreparedFeatures):
                prepared[index] = features
            else:
                outcomes[index] = features
        for index, scored in _score_prepared(variant, dict(sorted(prepared.items()))).items():
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
                    model_version=variant.version,
                )
            )
            done.append(outcome)
        return done


_SYNTHETIC = {"float": 0.0, "bool": False, "string": ""}
_SYNTHETIC_TYPES = {"float": pl.Float64, "bool": pl.Boolean, "string": pl.String}


def freeze_loaded_heap() -> None:
    """Exempt everything loaded so far (modules, models, the app) from garbage collection.

    A full collection otherwise walks those ~200k objects: a 40-130 ms stall on whatever
    requests are in flight. Servers call it once their endpoints are loaded.
    """
    gc.collect()
    gc.freeze()


def warm_up(model: PackagedModel) -> None:
    """Score one synthetic row, so that the first real request does not pay for lazy set-up
    (the booster's predictor, polars' expression plans).

    It skips the package's fault injection on purpose: a drill's faulty model must still get
    to serve. A model that cannot score the row is logged, not refused: real requests then
    answer with its error, which the alarms see.
    """
    with _warm_lock:
        if model in _warmed:
            return
        _warm_up(model)
        _warmed.add(model)


# Models already warmed. A swap re-weighting models that serve (a blue/green step) must not
# warm them again: set_param on a booster that is scoring in another thread is a data race.
_warmed: weakref.WeakSet[PackagedModel] = weakref.WeakSet()
_warm_lock = threading.Lock()


def _warm_up(model: PackagedModel) -> None:
    set_param = getattr(model.booster, "set_param", None)
    if model.framework == "xgboost" and set_param is not None:
        # One thread per call: a request's few rows gain nothing from more, and OpenMP's
        # spinning threads would take the CPU from the event loop and the other workers.
        set_param({"nthread": 1})
    types = model.input_types
    row = pl.DataFrame(
        {name: [_SYNTHETIC.get(kind, 0.0)] for name, kind in types.items()},
        schema={name: _SYNTHETIC_TYPES.get(kind, pl.Float64) for name, kind in types.items()},
    )
    try:
        predict_positive(model.framework, model.booster, model.prep.transform(row).matrix)
        # Builds the JSON fast path's plan and runs its typed decoder once.
        model.prep.transform_json(orjson.dumps(row.to_dicts()))
    except (Exception, pl.exceptions.PanicException) as exc:
        _log.warning(
            "warm-up of a %s model failed: %s: %s", model.framework, type(exc).__name__, exc
        )


class _Request:
    """One request in a batch (a plain class: built for every request, kept cheap)."""

    __slots__ = ("deadline", "rows", "started")

    def __init__(self, rows: RowsDecoder, started: float, deadline: float | None) -> None:
        self.rows = rows
        self.started = started  # time.perf_counter() when the runtime got it
        self.deadline = deadline


# Bodies up to this size in all may be scored on the event loop (a few dozen events of the
# fast path: well under a millisecond); see serve.batching.
INLINE_BODY_BYTES = 64 * 1024


def _is_small(requests: list[_Request]) -> bool:
    total = 0
    for request in requests:
        if not isinstance(request.rows, RequestRows):
            return False
        total += len(request.rows.body)
    return total <= INLINE_BODY_BYTES


def _prepare_records(prep: FeaturePrep, rows: RowsDecoder) -> PreparedFeatures | None:
    """A JSON body's events prepared without a polars frame, when they allow it: decoded
    straight into typed values when they can be, else parsed into objects first."""
    if not isinstance(rows, RequestRows) or not rows.is_json:
        return None
    typed = prep.transform_json(rows.body)
    if typed is not None:
        return typed
    records = rows.records()
    return None if records is None else prep.transform_records(records)


def _prepare_frames(
    prep: FeaturePrep, frames: dict[int, pl.DataFrame]
) -> dict[int, PreparedFeatures | BaseException]:
    """All frames prepared in one call; if that fails, each frame alone, so that only the
    requests that cause a failure see it."""
    results: dict[int, PreparedFeatures | BaseException] = {}
    if len(frames) > 1:
        try:
            batch = prep.transform(pl.concat(list(frames.values()), how="vertical"))
        except (Exception, pl.exceptions.PanicException):
            pass
        else:
            has_unseen = sum(batch.unseen_counts.values()) > 0
            offset = 0
            for index, frame in frames.items():
                # Unseen categories are counted per call; only a batch that has any pays for
                # counting them per request again.
                counts = prep.transform(frame).unseen_counts if has_unseen else {}
                part = batch.matrix[offset : offset + len(frame)]
                results[index] = PreparedFeatures(part, counts)
                offset += len(frame)
            return results
    for index, frame in frames.items():
        try:
            results[index] = prep.transform(frame)
        except (Exception, pl.exceptions.PanicException) as exc:
            results[index] = _as_model_error(exc)
    return results


def _score_prepared(
    variant: LoadedVariant, prepared: dict[int, PreparedFeatures]
) -> dict[int, Scored | BaseException]:
    """Every request's rows in one model call; if that call fails, each request's alone.

    A faulty package (a drill) fails each request on its own draw and delays the call once.
    """
    model = variant.model
    failures = model.injected_failures(len(prepared))
    results: dict[int, Scored | BaseException] = {
        index: injected_fault() for index, fails in zip(prepared, failures, strict=True) if fails
    }
    prepared = {index: p for index, p in prepared.items() if index not in results}
    if prepared:
        model.inject_latency()
    if len(prepared) > 1:
        try:
            matrix = np.concatenate([p.matrix for p in prepared.values()])
            scores = model.score_prepared(matrix, faults=False)
        except (Exception, pl.exceptions.PanicException):
            pass
        else:
            offset = 0
            for index, features in prepared.items():
                rows = len(features.matrix)
                results[index] = variant.scored(scores[offset : offset + rows], features)
                offset += rows
            return results
    for index, features in prepared.items():
        try:
            scores = model.score_prepared(features.matrix, faults=False)
            results[index] = variant.scored(scores, features)
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
