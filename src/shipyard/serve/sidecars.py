"""What an endpoint does beside answering: shadow copies, data capture, multi-model scoring.

:class:`EndpointSidecars` is built from an endpoint config when the endpoint goes into
service; :meth:`EndpointService.invoke` calls :meth:`EndpointSidecars.after` once the caller's
scores exist. ``after`` only draws samples and queues work: everything else runs in background
threads, so neither the shadow nor capture can slow or fail a request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from shipyard.core.errors import InvalidRequestError, ModelFault
from shipyard.core.interfaces import MetricsSink
from shipyard.core.types import Invocation
from shipyard.serve.capture import CaptureItem, CaptureWriter, Payload, new_event_id
from shipyard.serve.codecs import DEFAULT_OUTPUT, encode_scores
from shipyard.serve.endpoint_config import DataCaptureConfig
from shipyard.serve.errors import TargetError
from shipyard.serve.multimodel import MultiModelCache
from shipyard.serve.runtime import RowsDecoder, Scored, Target
from shipyard.serve.shadow import ShadowVariant


@dataclass(frozen=True)
class _ShadowContext:
    payload: Payload | None
    at_s: float
    event_id: str


class EndpointSidecars:
    """One endpoint's shadow, capture settings and multi-model cache (each optional)."""

    def __init__(
        self,
        endpoint: str,
        capture: CaptureWriter,
        capture_config: DataCaptureConfig | None,
        multi: MultiModelCache | None = None,
        *,
        variant_name: str = "AllTraffic",
    ) -> None:
        self.endpoint = endpoint
        self.variant_name = variant_name
        self.capture = capture
        self.capture_config = capture_config
        self.multi = multi
        self.shadow: ShadowVariant | None = None
        self.columns: tuple[str, ...] = ()  # CSV column order, to find sensitive columns

    def after(self, rows: RowsDecoder, payload: Payload | None, scored: Scored) -> None:
        """Queue the shadow copy and the capture record of one answered request."""
        at_s = time.time()
        event_id = new_event_id()
        if self.shadow is not None:
            self.shadow.offer(rows, _ShadowContext(payload, at_s, event_id))
        config = self.capture_config
        if config is not None and self.capture.sampled(config):
            self.capture.offer(self._item(scored.variant, config, payload, at_s, event_id, scored))

    def on_shadow_scored(self, scores: object, context: object) -> None:
        """The shadow answered: capture its answer under the shadow variant's name."""
        config, shadow = self.capture_config, self.shadow
        if config is None or shadow is None or not isinstance(context, _ShadowContext):
            return
        if not self.capture.sampled(config):
            return
        output = Scored(np.asarray(scores), shadow.name, shadow.ref, _output_name(shadow), 0)
        item = self._item(shadow.name, config, context.payload, context.at_s, context.event_id,
                          output)  # fmt: skip
        self.capture.offer(item)

    def score_multi(
        self, rows: RowsDecoder, target: Target, variant: str, metrics: MetricsSink
    ) -> Scored:
        """Score on the model the request names (a multi-model endpoint's only path)."""
        assert self.multi is not None
        if target.model is None:
            raise TargetError(
                f"endpoint {self.endpoint!r} is a multi-model endpoint: name the model with "
                f"X-Amzn-SageMaker-Target-Model, e.g. {self.multi.example}"
            )
        ref, model = self.multi.get(target.model)
        started = time.perf_counter()
        status = 200
        try:
            frame = rows(model.input_types)
            scores, unseen = model.score(frame)
            output = model.manifest.get("signature", {}).get("output") or DEFAULT_OUTPUT
            return Scored(np.asarray(scores), variant, ref, output, sum(unseen.values()))
        except InvalidRequestError:
            status = 400
            raise
        except ModelFault:
            status = 500
            raise
        except Exception as exc:
            status = 500
            raise ModelFault(f"the model failed: {type(exc).__name__}: {exc}") from exc
        finally:
            metrics.record(
                Invocation(
                    endpoint=self.endpoint,
                    variant=variant,
                    status=status,
                    model_latency_us=(time.perf_counter() - started) * 1e6,
                    overhead_latency_us=0.0,
                    at_s=time.time(),
                    is_model_error=status >= 400,
                    model_version=str(ref),
                )
            )

    def close(self) -> None:
        if self.shadow is not None:
            self.shadow.close()

    def _item(
        self,
        variant: str,
        config: DataCaptureConfig,
        payload: Payload | None,
        at_s: float,
        event_id: str,
        scored: Scored,
    ) -> CaptureItem:
        accept = None if payload is None else payload.accept

        def output() -> tuple[bytes, str]:
            return encode_scores(scored.scores, accept, scored.output_name)

        return CaptureItem(
            endpoint=self.endpoint,
            variant=variant,
            config=config,
            at_s=at_s,
            event_id=event_id,
            input_body=None if payload is None else payload.body,
            input_type=None if payload is None else payload.content_type,
            input_columns=self._columns(),
            output=output,
            inference_id=None if payload is None else payload.inference_id,
        )

    def _columns(self) -> tuple[str, ...]:
        if self.columns:
            return self.columns
        return tuple(self.shadow.model.input_types) if self.shadow is not None else ()


def _output_name(shadow: ShadowVariant) -> str:
    output = shadow.model.manifest.get("signature", {}).get("output")
    return output if isinstance(output, str) and output else DEFAULT_OUTPUT
