"""In-memory serving state: which loaded model answers which share of an endpoint's traffic."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np

from shipyard.core.errors import InvalidRequestError, ModelFault
from shipyard.core.interfaces import MetricsSink
from shipyard.core.package import PackagedModel
from shipyard.core.types import Invocation, ModelRef
from shipyard.serve.codecs import decode_events, encode_scores


@dataclass(frozen=True)
class LoadedVariant:
    name: str
    ref: ModelRef
    weight: float
    model: PackagedModel


@dataclass(frozen=True)
class InvocationResult:
    body: bytes
    content_type: str
    variant: str
    ref: ModelRef
    unseen_categories: int


class EndpointRuntime:
    """Routes requests across variants by weight; the variant set is swapped atomically.

    A request reads ``self._variants`` once, so a swap never leaves it half-routed: requests
    in flight finish on the model they started with, new ones see the new set.
    """

    def __init__(self, name: str, variants: list[LoadedVariant], metrics: MetricsSink) -> None:
        self.name = name
        self._metrics = metrics
        self._rng = random.Random()
        self.swap(variants)

    def swap(self, variants: list[LoadedVariant]) -> None:
        if not variants or sum(v.weight for v in variants) <= 0:
            raise InvalidRequestError(f"endpoint {self.name!r} needs a variant with weight > 0")
        self._variants = tuple(variants)

    @property
    def variants(self) -> tuple[LoadedVariant, ...]:
        return self._variants

    def pick(self, target_variant: str | None) -> LoadedVariant:
        variants = self._variants
        if target_variant:
            for variant in variants:
                if variant.name == target_variant:
                    return variant
            names = ", ".join(v.name for v in variants)
            raise LookupError(
                f"endpoint {self.name!r} has no variant {target_variant!r}; variants: {names}"
            )
        if len(variants) == 1:
            return variants[0]
        return self._rng.choices(variants, weights=[v.weight for v in variants])[0]

    def invoke(
        self,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        target_variant: str | None = None,
    ) -> InvocationResult:
        """Score a request; records one metrics sample whatever the outcome."""
        started = time.perf_counter()
        variant = self.pick(target_variant)
        status = 200
        unseen_total = 0
        model_started = started
        try:
            frame = decode_events(body, content_type, variant.model.input_types)
            model_started = time.perf_counter()
            scores, unseen = variant.model.score(frame)
            unseen_total = sum(unseen.values())
            payload, media = encode_scores(np.asarray(scores), accept)
            return InvocationResult(payload, media, variant.name, variant.ref, unseen_total)
        except InvalidRequestError:
            status = 400
            raise
        except ModelFault:
            status = 500
            raise
        except Exception as exc:  # the model itself broke: a ModelError, never a bare 500
            status = 500
            raise ModelFault(f"the model failed: {type(exc).__name__}: {exc}") from exc
        finally:
            finished = time.perf_counter()
            model_us = (finished - model_started) * 1e6
            self._metrics.record(
                Invocation(
                    endpoint=self.name,
                    variant=variant.name,
                    status=status,
                    model_latency_us=model_us,
                    overhead_latency_us=(model_started - started) * 1e6,
                    at_s=time.time(),
                    is_model_error=status >= 400,
                    unseen_categories=unseen_total,
                    model_version=str(variant.ref),
                )
            )
