"""Endpoint configs: production variants, an optional shadow, data capture, multi-model.

The JSON document uses SageMaker's CreateEndpointConfig field names where they exist
(``ProductionVariants[VariantName, ModelName, InitialVariantWeight, InitialInstanceCount]``,
``ShadowProductionVariants``, ``DataCaptureConfig``); ``ModelName`` is a registry version,
``GROUP@VERSION``. Shipyard's additions: ``ShadowSamplingPercentage`` (SageMaker does not say
which share a shadow gets) and ``MultiModelConfig``. The same document is what gets stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.core.errors import InvalidRequestError
from shipyard.core.names import check_name
from shipyard.core.types import ModelRef

MAX_VARIANTS = 10  # CreateEndpointConfig's limit on ProductionVariants
CAPTURE_MODES = ("Input", "Output", "InputAndOutput")


@dataclass(frozen=True)
class VariantSpec:
    """One production variant: which model version, its share of traffic, its workers."""

    name: str
    model: ModelRef
    weight: float = 1.0
    instance_count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.model.group,
            "version": self.model.version,
            "weight": self.weight,
            "instance_count": self.instance_count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariantSpec:
        return cls(
            data["name"],
            ModelRef(data["group"], int(data["version"])),
            data["weight"],
            int(data.get("instance_count", 1)),
        )


@dataclass(frozen=True)
class DataCaptureConfig:
    """What to capture of a sampled request, SageMaker's ``DataCaptureConfig``.

    With no content types declared, SageMaker base64-encodes whatever it captures.
    """

    sampling_percentage: float
    capture_input: bool = True
    capture_output: bool = True
    enabled: bool = True
    csv_content_types: tuple[str, ...] = ()
    json_content_types: tuple[str, ...] = ()
    destination: str = "capture"


@dataclass(frozen=True)
class MultiModelConfig:
    """Models loaded by name on first call: versions of ``group``, LRU-evicted within bounds."""

    group: str
    max_models: int = 4
    max_bytes: int | None = None


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    variants: tuple[VariantSpec, ...]
    shadow: VariantSpec | None = None
    shadow_sampling_percentage: float = 100.0
    data_capture: DataCaptureConfig | None = None
    multi_model: MultiModelConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def config_to_document(config: EndpointConfig) -> dict[str, Any]:
    """The SageMaker-shaped JSON of ``config`` (what the API answers and the store keeps)."""
    doc: dict[str, Any] = {
        "EndpointConfigName": config.name,
        "ProductionVariants": [_variant_doc(v) for v in config.variants],
    }
    if config.shadow is not None:
        doc["ShadowProductionVariants"] = [_variant_doc(config.shadow)]
        doc["ShadowSamplingPercentage"] = config.shadow_sampling_percentage
    capture = config.data_capture
    if capture is not None:
        mode = (
            "InputAndOutput"
            if capture.capture_input and capture.capture_output
            else ("Input" if capture.capture_input else "Output")
        )
        doc["DataCaptureConfig"] = {
            "EnableCapture": capture.enabled,
            "InitialSamplingPercentage": capture.sampling_percentage,
            "DestinationS3Uri": capture.destination,
            "CaptureOptions": [{"CaptureMode": mode}],
        }
        headers: dict[str, list[str]] = {}
        if capture.csv_content_types:
            headers["CsvContentTypes"] = list(capture.csv_content_types)
        if capture.json_content_types:
            headers["JsonContentTypes"] = list(capture.json_content_types)
        if headers:
            doc["DataCaptureConfig"]["CaptureContentTypeHeader"] = headers
    if config.multi_model is not None:
        multi = config.multi_model
        doc["MultiModelConfig"] = {
            "ModelPackageGroupName": multi.group,
            "MaxModels": multi.max_models,
        }
        if multi.max_bytes is not None:
            doc["MultiModelConfig"]["MaxBytes"] = multi.max_bytes
    return doc


def config_from_document(doc: Any, *, name: str | None = None) -> EndpointConfig:
    """Parse a SageMaker-shaped document; every problem raises one line naming the field."""
    _check(isinstance(doc, dict), "the endpoint config must be a JSON object")
    name = name if name is not None else _text(doc, "EndpointConfigName")
    check_name("endpoint config", name)
    multi = _multi_model(doc.get("MultiModelConfig"))
    raw = doc.get("ProductionVariants")
    _check(
        isinstance(raw, list) and 1 <= len(raw) <= MAX_VARIANTS,
        f"ProductionVariants must list 1-{MAX_VARIANTS} variants",
    )
    variants = tuple(_variant(v, f"ProductionVariants[{i}]", multi) for i, v in enumerate(raw))
    names = [v.name for v in variants]
    _check(len(set(names)) == len(names), f"VariantName values must differ, got {names}")
    _check(
        sum(v.weight for v in variants) > 0, "at least one variant needs InitialVariantWeight > 0"
    )
    shadow = None
    shadows = doc.get("ShadowProductionVariants")
    if shadows is not None:
        _check(
            isinstance(shadows, list) and len(shadows) == 1 and len(variants) == 1,
            "ShadowProductionVariants takes exactly one shadow beside exactly one production "
            "variant (as SageMaker requires)",
        )
        _check(multi is None, "a multi-model endpoint cannot have a shadow variant")
        shadow = _variant(shadows[0], "ShadowProductionVariants[0]", None)
        _check(shadow.name not in names, f"shadow VariantName {shadow.name!r} is already used")
    return EndpointConfig(
        name=name,
        variants=variants,
        shadow=shadow,
        shadow_sampling_percentage=_percentage(doc, "ShadowSamplingPercentage", 100.0),
        data_capture=_capture(doc.get("DataCaptureConfig")),
        multi_model=multi,
    )


def _variant_doc(v: VariantSpec) -> dict[str, Any]:
    return {
        "VariantName": v.name,
        "ModelName": str(v.model),
        "InitialVariantWeight": v.weight,
        "InitialInstanceCount": v.instance_count,
    }


def _variant(raw: Any, where: str, multi: MultiModelConfig | None) -> VariantSpec:
    _check(isinstance(raw, dict), f"{where} must be a JSON object")
    name = check_name("variant", _text(raw, "VariantName", where))
    if multi is not None:
        # The variant serves every version of the group; the ref names the group.
        model = ModelRef(multi.group, 0)
    elif isinstance(raw.get("ModelName"), str):
        try:
            model = ModelRef.parse(raw["ModelName"])
        except ValueError:
            raise InvalidRequestError(
                f"{where}.ModelName {raw['ModelName']!r} must be GROUP@VERSION, e.g. fraud@2"
            ) from None
    else:
        group, version = raw.get("ModelPackageGroupName"), raw.get("ModelVersion")
        _check(
            isinstance(group, str) and isinstance(version, int) and version >= 1,
            f"{where} needs ModelName (GROUP@VERSION) or ModelPackageGroupName and ModelVersion",
        )
        model = ModelRef(group, version)
    weight = raw.get("InitialVariantWeight", 1.0)
    _check(
        isinstance(weight, int | float) and not isinstance(weight, bool) and weight >= 0,
        f"{where}.InitialVariantWeight must be a number >= 0, got {weight!r}",
    )
    count = raw.get("InitialInstanceCount", 1)
    _check(
        isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= 64,
        f"{where}.InitialInstanceCount must be an integer 1-64, got {count!r}",
    )
    return VariantSpec(name, model, float(weight), count)


def _capture(raw: Any) -> DataCaptureConfig | None:
    if raw is None:
        return None
    _check(isinstance(raw, dict), "DataCaptureConfig must be a JSON object")
    enabled = raw.get("EnableCapture", True)
    _check(isinstance(enabled, bool), "DataCaptureConfig.EnableCapture must be true or false")
    _check(
        "InitialSamplingPercentage" in raw,
        "DataCaptureConfig.InitialSamplingPercentage is required (0-100)",
    )
    options = raw.get("CaptureOptions", [{"CaptureMode": "InputAndOutput"}])
    _check(
        isinstance(options, list)
        and options
        and all(isinstance(o, dict) and o.get("CaptureMode") in CAPTURE_MODES for o in options),
        f"DataCaptureConfig.CaptureOptions must list CaptureMode values from {CAPTURE_MODES}",
    )
    modes = {o["CaptureMode"] for o in options}
    headers = raw.get("CaptureContentTypeHeader", {})
    _check(isinstance(headers, dict), "CaptureContentTypeHeader must be a JSON object")
    destination = raw.get("DestinationS3Uri", "capture")
    _check(
        isinstance(destination, str) and destination.strip("/") != "",
        "DataCaptureConfig.DestinationS3Uri must be a folder of the object store, e.g. capture",
    )
    return DataCaptureConfig(
        sampling_percentage=_percentage(raw, "InitialSamplingPercentage", 0.0),
        capture_input=bool(modes & {"Input", "InputAndOutput"}),
        capture_output=bool(modes & {"Output", "InputAndOutput"}),
        enabled=enabled,
        csv_content_types=_types(headers, "CsvContentTypes"),
        json_content_types=_types(headers, "JsonContentTypes"),
        destination=destination.strip("/"),
    )


def _multi_model(raw: Any) -> MultiModelConfig | None:
    if raw is None:
        return None
    _check(isinstance(raw, dict), "MultiModelConfig must be a JSON object")
    group = _text(raw, "ModelPackageGroupName", "MultiModelConfig")
    max_models = raw.get("MaxModels", 4)
    _check(
        isinstance(max_models, int) and not isinstance(max_models, bool) and max_models >= 1,
        f"MultiModelConfig.MaxModels must be an integer >= 1, got {max_models!r}",
    )
    max_bytes = raw.get("MaxBytes")
    _check(
        max_bytes is None or (isinstance(max_bytes, int) and max_bytes >= 1),
        f"MultiModelConfig.MaxBytes must be an integer >= 1, got {max_bytes!r}",
    )
    return MultiModelConfig(group, max_models, max_bytes)


def _types(headers: dict[str, Any], key: str) -> tuple[str, ...]:
    values = headers.get(key, [])
    _check(
        isinstance(values, list) and len(values) <= 10 and all(isinstance(v, str) for v in values),
        f"CaptureContentTypeHeader.{key} must list at most 10 content types",
    )
    return tuple(v.strip().lower() for v in values)


def _percentage(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    _check(
        isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100,
        f"{key} must be a number 0-100, got {value!r}",
    )
    return float(value)


def _text(raw: dict[str, Any], key: str, where: str = "") -> str:
    value = raw.get(key)
    _check(
        isinstance(value, str) and value != "",
        f"{where + '.' if where else ''}{key} is required and must be a string",
    )
    return str(value)


def _check(condition: object, message: str) -> None:
    if not condition:
        raise InvalidRequestError(message)
