"""Endpoints: their state machine and the runtimes loaded for them (configs persist in
endpoint_store, rows in endpoint_rows, blue/green steps in blue_green)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import anyio

from shipyard.core.errors import (
    InvalidRequestError,
    NotFoundError,
    ShipyardError,
    StateError,
)
from shipyard.core.interfaces import MetricsSink, ModelStore
from shipyard.core.names import check_name
from shipyard.core.types import ModelRef
from shipyard.serve.blue_green import BlueGreenDeployments, deployment_state
from shipyard.serve.capture import CapturePolicy, CaptureWriter, Payload
from shipyard.serve.deployment_config import DeploymentConfig
from shipyard.serve.endpoint_config import EndpointConfig, VariantSpec
from shipyard.serve.endpoint_rows import (
    CREATING,
    FAILED,
    IN_SERVICE,
    ROLLING_BACK,
    UPDATING,
    EndpointDescription,
    delete_endpoint_row,
    endpoint_names,
    insert_endpoint,
    read_endpoint,
    write_status,
)
from shipyard.serve.endpoint_store import EndpointConfigStore, variant_dicts
from shipyard.serve.errors import InvocationTimeout
from shipyard.serve.loading import load_config
from shipyard.serve.multimodel import WorkerCacheStates
from shipyard.serve.runtime import EndpointRuntime, RowsDecoder, Scored, Target
from shipyard.serve.score_samples import ScoreSamples
from shipyard.serve.sidecars import EndpointSidecars
from shipyard.storage import MetadataStore, ObjectStore


class EndpointService:
    """Creates, updates, deletes and serves endpoints; implements ``TrafficController``.

    An endpoint serves one stored endpoint config (see :mod:`shipyard.serve.endpoint_config`);
    a change is a new config, loaded beside the old one and swapped in only once it loaded.
    """

    def __init__(
        self,
        meta: MetadataStore,
        store: ObjectStore,
        models: ModelStore,
        metrics: MetricsSink,
        *,
        capture_policy: CapturePolicy | None = None,
    ) -> None:
        self.meta = meta
        self.store = store
        self.models = models
        self.metrics = metrics
        self.capture = CaptureWriter(store, capture_policy or CapturePolicy())
        self.configs = EndpointConfigStore(meta)
        self.scores = ScoreSamples()
        self.worker_caches = WorkerCacheStates()  # multi-model caches of worker processes
        self._runtimes: dict[str, EndpointRuntime] = {}
        self._sidecars: dict[str, EndpointSidecars] = {}
        self._lock = threading.RLock()
        self.deployments = BlueGreenDeployments(self)

    # endpoint configs --------------------------------------------------------------

    def create_endpoint_config(
        self, config: EndpointConfig, *, actor: str = "system"
    ) -> EndpointConfig:
        """Store a named config (SageMaker's CreateEndpointConfig); names are never reused."""
        with self._lock:
            return self.configs.create(config, actor=actor)

    def describe_endpoint_config(self, name: str) -> EndpointConfig:
        return self.configs.describe(name)

    def list_endpoint_configs(self) -> list[EndpointConfig]:
        return self.configs.list()

    # endpoints -----------------------------------------------------------------------

    def create_endpoint(
        self,
        name: str,
        variants: list[VariantSpec] | None = None,
        *,
        config_name: str | None = None,
        actor: str = "system",
        reason: str = "",
    ) -> EndpointDescription:
        """Create ``name`` from ``variants`` (an unnamed config) or a stored ``config_name``.

        A config that cannot load (a model whose sha256 does not match, say) leaves the
        endpoint Failed with the reason, and raises it.
        """
        check_name("endpoint", name)
        with self._lock:
            if self._exists(name):
                raise StateError(f"endpoint {name!r} already exists; update it instead")
            config = self._config_for(name, variants, config_name, actor)
            insert_endpoint(self.meta, name, config, actor=actor, reason=reason)
            try:
                self._activate(name, config)
            except ShipyardError as exc:
                write_status(self.meta, name, FAILED, reason=str(exc), actor=actor)
                raise
            write_status(self.meta, name, IN_SERVICE, reason="models loaded", actor=actor)
            return self.describe(name)

    def update_endpoint(
        self,
        name: str,
        variants: list[VariantSpec] | None = None,
        *,
        config_name: str | None = None,
        actor: str = "system",
        reason: str = "",
        status_during: str = UPDATING,
        deployment: DeploymentConfig | None = None,
    ) -> EndpointDescription:
        """Load the new config beside the old one, then swap; the old one keeps serving.

        With a ``deployment``, the swap is a blue/green traffic shift instead: this returns
        once the new fleet took its first share, and a guardrail drives the rest.
        """
        with self._lock:
            current = self.describe(name)
            if current.status not in (IN_SERVICE,):
                progress = self.deployments.progress(name)
                doing = "" if progress is None else f" ({progress.summary})"
                raise StateError(
                    f"endpoint {name!r} is {current.status}{doing}; it cannot be updated "
                    "until that ends (or roll it back)"
                )
            config = self._config_for(name, variants, config_name, actor)
            if deployment is not None:
                self.deployments.start(name, config, deployment, actor=actor, reason=reason)
                return self.describe(name)
            write_status(self.meta, name, status_during, reason=reason, actor=actor)
            try:
                self._activate(name, config)
            except ShipyardError as exc:
                write_status(
                    self.meta,
                    name,
                    IN_SERVICE,
                    reason=f"update to {config.name} failed, still serving "
                    f"{current.config_name}: {exc}",
                    actor=actor,
                )
                raise
            write_status(
                self.meta,
                name,
                IN_SERVICE,
                reason=reason,
                actor=actor,
                config_name=config.name,
                details={"variants": variant_dicts(config)},
            )
            return self.describe(name)

    def delete_endpoint(self, name: str, *, actor: str = "system", reason: str = "") -> None:
        """Stop serving ``name`` and forget it; its configs stay (SageMaker's DeleteEndpoint)."""
        with self._lock:
            current = self.describe(name)
            self._runtimes.pop(name, None)
            sidecars = self._sidecars.pop(name, None)
            if sidecars is not None:
                sidecars.close()
            self.capture.flush()
            delete_endpoint_row(self.meta, current, actor=actor, reason=reason)

    def describe(self, name: str) -> EndpointDescription:
        found = read_endpoint(self.meta, name)
        if found is None:
            known = ", ".join(endpoint_names(self.meta)) or "none"
            raise NotFoundError(f"endpoint {name!r} does not exist; endpoints: {known}")
        return found

    def list_endpoints(self) -> list[EndpointDescription]:
        return [self.describe(n) for n in endpoint_names(self.meta)]

    def load_in_service(self) -> list[str]:
        """Load every endpoint that was serving (at server start); returns the names loaded.

        An endpoint left Updating or RollingBack by a crash serves its last committed config
        (the config name only advances once a change has succeeded) and is InService again;
        one in the middle of a blue/green deployment serves its last committed split (both
        fleets, as stored) and stays as it was, for the guardrail to resume or finish rolling
        back (see :mod:`shipyard.serve.blue_green`).
        """
        loaded = []
        for description in self.list_endpoints():
            serving = (IN_SERVICE, UPDATING, ROLLING_BACK)
            if description.status not in serving or description.name in self.serving:
                continue
            assert description.config is not None
            self._activate(description.name, description.config)
            mid_deployment = deployment_state(description.config) is not None
            if description.status != IN_SERVICE and not mid_deployment:
                write_status(
                    self.meta,
                    description.name,
                    IN_SERVICE,
                    reason=f"restarted while {description.status}; serving the last committed "
                    f"config {description.config_name}",
                    actor="system",
                )
            loaded.append(description.name)
        return loaded

    def runtime(self, name: str) -> EndpointRuntime:
        runtime = self._runtimes.get(name)
        if runtime is None:
            known = ", ".join(self.serving) or "none"
            raise NotFoundError(
                f"endpoint {name!r} is not in service here; endpoints in service: {known}"
            )
        return runtime

    def check_serving(self, name: str) -> None:
        """Raise NotFoundError unless ``name`` is in service here (any kind of endpoint)."""
        if name not in self._runtimes and name not in self._sidecars:
            self.runtime(name)

    def sidecars(self, name: str) -> EndpointSidecars | None:
        """The endpoint's shadow, capture and multi-model state, if it has any."""
        return self._sidecars.get(name)

    @property
    def serving(self) -> list[str]:
        multi = [n for n, s in self._sidecars.items() if s.multi is not None]
        return sorted({*self._runtimes, *multi})

    def follow(self, name: str) -> None:
        """Load and serve ``name``'s committed config here, leaving the metadata alone: worker
        processes follow the supervisor's endpoint changes this way (serve.workers)."""
        config = self.describe(name).config
        assert config is not None
        with self._lock:
            self._activate(name, config)

    def stop_serving(self, name: str) -> None:
        """Forget what ``name`` loaded here (a worker whose endpoint left service)."""
        with self._lock:
            self._runtimes.pop(name, None)
            sidecars = self._sidecars.pop(name, None)
        if sidecars is not None:
            sidecars.close()

    def close(self) -> None:
        """Stop shadows and write out every captured record (server shutdown)."""
        for sidecars in self._sidecars.values():
            sidecars.close()
        self.capture.close()

    async def invoke(
        self,
        name: str,
        rows: RowsDecoder,
        target: Target,
        *,
        timeout_s: float,
        payload: Payload | None = None,
    ) -> Scored:
        """Score one request's rows on endpoint ``name``: the one call every protocol makes.

        Scoring runs off the event loop, micro-batched with concurrent requests for the same
        variant, so a slow model never stalls other requests or ``/ping``; past ``timeout_s``
        the caller gets :class:`InvocationTimeout` (the batch finishes in the background).
        """
        sidecars = self._sidecars.get(name)
        if sidecars is not None and sidecars.multi is not None:
            scored = await self._invoke_multi(sidecars, name, rows, target, timeout_s)
        else:
            runtime = self.runtime(name)
            deadline = time.monotonic() + timeout_s
            try:
                with anyio.fail_after(timeout_s):
                    scored = await runtime.submit(rows, target, deadline)
            except TimeoutError:
                raise InvocationTimeout(name, timeout_s) from None
        if sidecars is not None:
            # Only sampling and a queue put: the shadow and capture run in the background.
            sidecars.after(rows, payload, scored)
        if name in self.scores.watched:
            self.scores.observe(name, scored.variant, scored.scores)
        return scored

    async def _invoke_multi(
        self,
        sidecars: EndpointSidecars,
        name: str,
        rows: RowsDecoder,
        target: Target,
        timeout_s: float,
    ) -> Scored:
        variant = sidecars.variant_name
        try:
            with anyio.fail_after(timeout_s):
                return await anyio.to_thread.run_sync(
                    sidecars.score_multi, rows, target, variant, self.metrics,
                    abandon_on_cancel=True,
                )  # fmt: skip
        except TimeoutError:
            raise InvocationTimeout(name, timeout_s) from None

    # TrafficController protocol -------------------------------------------------------

    def serving_versions(self, endpoint: str) -> dict[str, ModelRef]:
        return {v.name: v.model for v in self.describe(endpoint).variants}

    def route_all(self, endpoint: str, ref: ModelRef, *, actor: str, reason: str) -> None:
        """Serve ``ref`` alone; the shadow and capture settings of the config carry over."""
        current = self.describe(endpoint)
        assert current.config is not None
        name = current.variants[0].name if current.variants else "AllTraffic"
        first = current.variants[0] if current.variants else None
        count = first.instance_count if first is not None else 1
        config = replace(
            current.config,
            name=f"{endpoint}-{time.time_ns()}",
            variants=(VariantSpec(name, ref, 1.0, count),),
        )
        self.configs.store(config, actor=actor)
        self.update_endpoint(
            endpoint,
            config_name=config.name,
            actor=actor,
            reason=reason,
            status_during=ROLLING_BACK if actor.startswith("rollback") else UPDATING,
        )

    # internals --------------------------------------------------------------------------

    def _exists(self, name: str) -> bool:
        return read_endpoint(self.meta, name) is not None

    def _config_for(
        self,
        endpoint: str,
        variants: list[VariantSpec] | None,
        config_name: str | None,
        actor: str,
    ) -> EndpointConfig:
        if (variants is None) == (config_name is None):
            raise InvalidRequestError("give either production variants or an endpoint config name")
        if config_name is not None:
            return self.describe_endpoint_config(config_name)
        assert variants is not None
        if not variants:
            raise StateError(f"endpoint {endpoint!r} needs at least one production variant")
        for variant in variants:
            check_name("variant", variant.name)
        config = EndpointConfig(f"{endpoint}-{time.time_ns()}", tuple(variants))
        self.configs.store(config, actor=actor)
        return config

    def _activate(self, name: str, config: EndpointConfig) -> None:
        """Load everything ``config`` needs, then put it in service at once (or raise)."""
        current = self._runtimes.get(name)
        # A model already loaded for this endpoint is reused: blue/green steps only re-weight.
        reuse = {} if current is None else {v.ref: v.model for v in current.variants}
        loaded, sidecars = load_config(name, config, self.models, self.store, self.capture, reuse)
        multi = sidecars.multi
        if multi is None:
            runtime = self._runtimes.get(name)
            if runtime is None:
                self._runtimes[name] = EndpointRuntime(name, loaded, self.metrics)
            else:
                runtime.swap(loaded)
        else:
            self._runtimes.pop(name, None)
        previous = self._sidecars.get(name)
        if config.shadow is None and config.data_capture is None and multi is None:
            self._sidecars.pop(name, None)
        else:
            self._sidecars[name] = sidecars
        if previous is not None:
            previous.close()
        if deployment_state(config) is None:
            self.scores.forget(name)
        else:
            self.scores.watch(name)


__all__ = [
    "CREATING",
    "FAILED",
    "IN_SERVICE",
    "ROLLING_BACK",
    "UPDATING",
    "EndpointDescription",
    "EndpointService",
]
