"""Loading what an endpoint config serves: its variants' packages, its shadow, its capture
and multi-model state, all before anything is swapped in."""

from __future__ import annotations

from shipyard.core.errors import ShipyardError, StorageError
from shipyard.core.interfaces import ModelStore
from shipyard.core.package import PackagedModel, load_package
from shipyard.core.types import ModelRef
from shipyard.serve.capture import CaptureWriter
from shipyard.serve.endpoint_config import EndpointConfig, VariantSpec
from shipyard.serve.multimodel import MultiModelCache
from shipyard.serve.runtime import LoadedVariant
from shipyard.serve.shadow import ShadowVariant
from shipyard.serve.sidecars import EndpointSidecars
from shipyard.storage import ObjectStore


def load_config(
    name: str,
    config: EndpointConfig,
    models: ModelStore,
    store: ObjectStore,
    capture: CaptureWriter,
    reuse: dict[ModelRef, PackagedModel],
) -> tuple[list[LoadedVariant], EndpointSidecars]:
    """The loaded variants of ``config`` (none for multi-model) and its sidecars; raises if
    anything cannot load. ``reuse``: models already loaded, by version, not loaded again."""
    multi = (
        None
        if config.multi_model is None
        else MultiModelCache(name, config.multi_model, store, models)
    )
    loaded = [] if multi is not None else load_variants(models, store, list(config.variants), reuse)
    shadow_loaded = (
        None if config.shadow is None else load_variants(models, store, [config.shadow])[0]
    )
    sidecars = EndpointSidecars(
        name, capture, config.data_capture, multi, variant_name=config.variants[0].name
    )
    if loaded:
        sidecars.columns = tuple(loaded[0].model.input_types)
    if shadow_loaded is not None:
        sidecars.shadow = ShadowVariant(
            name,
            shadow_loaded.name,
            shadow_loaded.ref,
            shadow_loaded.model,
            sampling_percentage=config.shadow_sampling_percentage,
            on_scored=sidecars.on_shadow_scored,
        )
    return loaded, sidecars


def load_variants(
    models: ModelStore,
    store: ObjectStore,
    variants: list[VariantSpec],
    reuse: dict[ModelRef, PackagedModel] | None = None,
) -> list[LoadedVariant]:
    """Load each variant's package (checking its sha256), reusing models already loaded."""
    loaded = []
    for spec in variants:
        known = (reuse or {}).get(spec.model)
        if known is not None:
            loaded.append(LoadedVariant(spec.name, spec.model, spec.weight, known))
            continue
        info = models.get_version(spec.model)
        try:
            model = load_package(store, info.artifact_uri, info.sha256)
        except ShipyardError:
            raise
        except Exception as exc:  # a corrupt model file must not leave the endpoint stuck
            raise StorageError(
                f"could not load {spec.model} from {info.artifact_uri}: {type(exc).__name__}: {exc}"
            ) from exc
        loaded.append(LoadedVariant(spec.name, spec.model, spec.weight, model))
    return loaded
