"""Reads a Model Monitor constraints.json (and optionally statistics.json) into a ``Contract``.

Lenient where SageMaker's files vary (``version`` 0 or 0.0, optional keys absent, unfamiliar
inferred types, extra keys such as ``monitoringConfigOverrides``), strict where a value would
change the contract: every such problem is a ``ContractError`` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.core.errors import ContractError
from shipyard.validate.contract import Contract

_CONTRACT_TYPES = {"Integral": "int", "Fractional": "float", "String": "string"}


def build_contract(
    constraints: str | Path | Mapping[str, Any],
    statistics: str | Path | Mapping[str, Any] | None,
    *,
    name: str,
) -> Contract:
    data, source = _load(constraints, "constraints")
    features = _features(data, source)
    columns = _columns(features, source)
    if statistics is not None:
        _check_statistics(features, source, *_load(statistics, "statistics"))
    return Contract.from_dict(
        {"name": name, "version": _digest(data), "columns": columns}, source=source
    )


def _load(item: str | Path | Mapping[str, Any], kind: str) -> tuple[dict[str, Any], str]:
    """The file's JSON object and how to name it in errors."""
    if isinstance(item, Mapping):
        return dict(item), f"<{kind}>"
    path = Path(item)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"{path}: cannot read {kind}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise ContractError(f"{path}: {kind} must be a JSON object, got {type(data).__name__}")
    return data, str(path)


def _features(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise ContractError(
            f"{source}: features: must be a non-empty list of feature objects, got {features!r}"
        )
    for index, feature in enumerate(features):
        if not isinstance(feature, dict):
            raise ContractError(f"{source}: features[{index}]: must be an object, got {feature!r}")
    return features


def _columns(features: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    first_index: dict[str, int] = {}
    columns = []
    for index, feature in enumerate(features):
        where = f"{source}: features[{index}]"
        column = _column(feature, where)
        name = column["name"]
        if name in first_index:
            raise ContractError(f"{where}.name: {name!r} is already features[{first_index[name]}]")
        first_index[name] = index
        columns.append(column)
    return columns


def _column(feature: dict[str, Any], where: str) -> dict[str, Any]:
    """One feature as ColumnSpec data; ``where`` is ``<file>: features[i]``."""
    name = feature.get("name")
    if not isinstance(name, str) or not name:
        raise ContractError(f"{where}.name: must be a non-empty string, got {name!r}")
    if name.startswith("_"):
        raise ContractError(
            f"{where}.name: {name!r} starts with '_', which shipyard reserves for metadata "
            "columns; rename the feature"
        )
    inferred = feature.get("inferred_type")
    # "Unknown" (an all-null baseline column) and anything unfamiliar are read as text.
    column: dict[str, Any] = {"name": name, "type": _CONTRACT_TYPES.get(str(inferred), "string")}
    column["required"] = _completeness(feature, where) >= 1.0
    if _is_non_negative(feature, where):
        if column["type"] == "string":
            raise ContractError(
                f"{where}.num_constraints.is_non_negative: applies to Integral and Fractional "
                f"features, not {inferred!r}"
            )
        column["min"] = 0.0
    domain = _domain(feature, where)
    if domain:
        if column["type"] != "string":
            raise ContractError(
                f"{where}.string_constraints.domains: applies to String features, not {inferred!r}"
            )
        column["allowed"] = domain
    return column


def _completeness(feature: dict[str, Any], where: str) -> float:
    completeness = feature.get("completeness", 0.0)
    is_number = isinstance(completeness, int | float) and not isinstance(completeness, bool)
    if not is_number or not 0.0 <= completeness <= 1.0:
        raise ContractError(
            f"{where}.completeness: must be a number between 0 and 1, got {completeness!r}"
        )
    return float(completeness)


def _section(feature: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    section = feature.get(key, {})
    if not isinstance(section, dict):
        raise ContractError(f"{where}.{key}: must be an object, got {section!r}")
    return section


def _is_non_negative(feature: dict[str, Any], where: str) -> bool:
    flag = _section(feature, "num_constraints", where).get("is_non_negative", False)
    if not isinstance(flag, bool):
        raise ContractError(
            f"{where}.num_constraints.is_non_negative: must be true or false, got {flag!r}"
        )
    return flag


def _domain(feature: dict[str, Any], where: str) -> list[str]:
    """The allowed values; an empty or absent list means no domain constraint."""
    domain = _section(feature, "string_constraints", where).get("domains", [])
    if not isinstance(domain, list):
        raise ContractError(
            f"{where}.string_constraints.domains: must be a list of values, got {domain!r}"
        )
    values = []
    for index, value in enumerate(domain):
        # Numbers are accepted as their text, e.g. merchant codes written without quotes.
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ContractError(
                f"{where}.string_constraints.domains[{index}]: must be a string, got {value!r}"
            )
        values.append(str(value))
    return values


def _check_statistics(
    features: list[dict[str, Any]], source: str, statistics: dict[str, Any], stats_source: str
) -> None:
    """Every constrained feature must be in statistics.json, with the same inferred type."""
    known: dict[str, tuple[int, Any]] = {}
    for index, feature in enumerate(_features(statistics, stats_source)):
        known.setdefault(str(feature.get("name")), (index, feature.get("inferred_type")))
    for feature in features:
        name = feature["name"]
        if name not in known:
            raise ContractError(
                f"{stats_source}: features: has no feature {name!r}, which {source} constrains; "
                "are the two files from the same baseline?"
            )
        index, inferred = known[name]
        if inferred != feature.get("inferred_type"):
            raise ContractError(
                f"{stats_source}: features[{index}].inferred_type: {inferred!r} for {name!r}, "
                f"but {source} says {feature.get('inferred_type')!r}; are the two files from "
                "the same baseline?"
            )


def _digest(data: dict[str, Any]) -> str:
    """A short content digest: the same constraints always give the same contract version."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
