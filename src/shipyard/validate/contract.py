"""A declared data contract: engine-neutral data that an engine compiles into checks.

Example::

    contract = load_contract("contracts/fraud.yaml")
    contract.column("amount").min  # 0.0
    contract.freshness  # Freshness(column='event_time', max_age_hours=24.0) or None
"""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shipyard.core.errors import ContractError, NotFoundError

ColumnType = Literal["string", "int", "float", "bool", "timestamp"]

# Package data: ``shipyard/validate/contracts/<name>.yaml``.
_PACKAGED_CONTRACTS = "shipyard.validate"
_NUMERIC_TYPES = ("int", "float")
_CONTRACT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _invalid(message: str) -> PydanticCustomError:
    # A custom error keeps pydantic's "Value error, " prefix out of our one-line messages.
    return PydanticCustomError("contract", message)


class _ContractModel(BaseModel):
    """Frozen, strict-shaped pydantic base: unknown keys are errors, instances are immutable."""

    # YAML reads `version: 1` and unquoted codes such as `5411` as numbers; they are text here.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    def __init__(self, **data: Any) -> None:
        # Built in code rather than parsed: still a ContractError, so callers catch one type.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ContractError(f"{type(self).__name__}: {_describe(exc)}") from None

    # Tells pydantic this __init__ only wraps its own, so nested parsing skips it and keeps
    # error locations such as ``columns[3].min`` (pydantic marks BaseModel.__init__ the same way).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class ColumnSpec(_ContractModel):
    """What one column must hold: its type, whether it may be null, and its value domain."""

    name: str
    type: ColumnType
    required: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    timestamp_format: str | None = None
    # Its values stay out of reports, violations and baselines (counts only); rows keep them.
    sensitive: bool = False
    unique: bool = False
    pattern: str | None = None

    @property
    def check_names(self) -> list[str]:
        """The checks this column declares, in the order every engine reports reason codes."""
        declared = {
            "not_null": self.required,
            "type": True,
            "min": self.min is not None,
            "max": self.max is not None,
            "allowed": self.allowed is not None,
            "unique": self.unique,
            "pattern": self.pattern is not None,
        }
        return [check for check, is_declared in declared.items() if is_declared]

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not name:
            raise _invalid("column name must not be empty")
        if name.startswith("_"):
            # Leading-underscore columns are ingestion metadata that validation passes through.
            raise _invalid(f"column name {name!r} starts with '_', which is reserved for metadata")
        return name

    @field_validator("min", "max")
    @classmethod
    def _check_bound(cls, bound: float | None, info: ValidationInfo) -> float | None:
        column_type = info.data.get("type")
        if bound is None or column_type is None:
            return bound
        if column_type not in _NUMERIC_TYPES:
            raise _invalid(f"{info.field_name} applies to int and float columns, not {column_type}")
        if bound != bound:
            raise _invalid(f"{info.field_name} must be a number, got NaN")
        low = info.data.get("min")
        if info.field_name == "max" and low is not None and bound < low:
            raise _invalid(f"max ({bound:g}) is below min ({low:g})")
        return bound

    @field_validator("allowed")
    @classmethod
    def _check_allowed(
        cls, allowed: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        column_type = info.data.get("type")
        if allowed is None or column_type is None:
            return allowed
        if column_type != "string":
            raise _invalid(f"allowed applies to string columns, not {column_type}")
        if not allowed:
            raise _invalid("allowed must list at least one value (omit it to allow any)")
        return allowed

    @field_validator("timestamp_format")
    @classmethod
    def _check_timestamp_format(cls, fmt: str | None, info: ValidationInfo) -> str | None:
        column_type = info.data.get("type")
        if fmt is None or column_type is None:
            return fmt
        if column_type != "timestamp":
            raise _invalid(f"timestamp_format applies to timestamp columns, not {column_type}")
        if "%" not in fmt:
            raise _invalid(f"timestamp_format {fmt!r} has no strftime directive such as %Y")
        return fmt

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, pattern: str | None, info: ValidationInfo) -> str | None:
        column_type = info.data.get("type")
        if pattern is None or column_type is None:
            return pattern
        if column_type != "string":
            raise _invalid(f"pattern applies to string columns, not {column_type}")
        try:
            re.compile(anchored_pattern(pattern))
        except re.error as exc:
            raise _invalid(f"pattern {pattern!r} is not a valid regex: {exc}") from None
        return pattern


def anchored_pattern(pattern: str) -> str:
    """``pattern`` made to match a whole value, as every engine compiles it."""
    return f"^(?:{pattern})$"


class Freshness(_ContractModel):
    """The batch is stale when its newest ``column`` value is older than ``max_age_hours``."""

    column: str
    max_age_hours: float

    @field_validator("max_age_hours")
    @classmethod
    def _check_age(cls, hours: float) -> float:
        if not hours > 0:
            raise _invalid(f"max_age_hours must be a positive number, got {hours}")
        return hours


class Contract(_ContractModel):
    """A named, versioned set of column specs plus the batch-level pass/fail thresholds."""

    name: str
    version: str
    columns: tuple[ColumnSpec, ...]
    max_bad_row_share: float = 1.0
    min_rows: int = 0
    max_rows: int | None = None
    freshness: Freshness | None = None

    @field_validator("name", "version")
    @classmethod
    def _check_not_empty(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            raise _invalid(f"{info.field_name} must not be empty")
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        # The name becomes a folder of the object store (curated/{name}/...).
        if not _CONTRACT_NAME.fullmatch(value):
            raise _invalid(
                f"name {value!r} must be 1-128 letters, digits, '.', '_' or '-', starting with "
                "a letter or digit"
            )
        return value

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, columns: tuple[ColumnSpec, ...]) -> tuple[ColumnSpec, ...]:
        if not columns:
            raise _invalid("a contract needs at least one column")
        first_index: dict[str, int] = {}
        for index, column in enumerate(columns):
            if column.name in first_index:
                raise _invalid(
                    f"column name {column.name!r} is declared twice "
                    f"(columns[{first_index[column.name]}] and columns[{index}])"
                )
            first_index[column.name] = index
        return columns

    @field_validator("max_bad_row_share")
    @classmethod
    def _check_share(cls, share: float) -> float:
        if not 0.0 <= share <= 1.0:
            raise _invalid(f"max_bad_row_share must be between 0 and 1, got {share}")
        return share

    @field_validator("min_rows")
    @classmethod
    def _check_min_rows(cls, min_rows: int) -> int:
        if min_rows < 0:
            raise _invalid(f"min_rows must be >= 0, got {min_rows}")
        return min_rows

    @field_validator("max_rows")
    @classmethod
    def _check_max_rows(cls, max_rows: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min_rows")
        if max_rows is not None and low is not None and max_rows < max(low, 1):
            raise _invalid(f"max_rows must be >= 1 and >= min_rows ({low}), got {max_rows}")
        return max_rows

    @field_validator("freshness")
    @classmethod
    def _check_freshness(
        cls, freshness: Freshness | None, info: ValidationInfo
    ) -> Freshness | None:
        columns = info.data.get("columns")
        if freshness is None or columns is None:
            return freshness
        types = {column.name: column.type for column in columns}
        if freshness.column not in types:
            raise _invalid(f"column {freshness.column!r} is not declared in the contract")
        if types[freshness.column] != "timestamp":
            raise _invalid(
                f"column {freshness.column!r} is {types[freshness.column]}; "
                "freshness needs a timestamp column"
            )
        return freshness

    @property
    def column_names(self) -> tuple[str, ...]:
        """The declared column names, in contract order."""
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``; raises ``NotFoundError`` naming the known columns."""
        for column in self.columns:
            if column.name == name:
                return column
        known = ", ".join(self.column_names)
        raise NotFoundError(f"contract {self.name!r} has no column {name!r}; known: {known}")

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>") -> Self:
        """Parse a contract from plain data; problems raise one-line ``ContractError``s."""
        if not isinstance(data, dict):
            raise ContractError(
                f"{source}: a contract must be a mapping, got {type(data).__name__}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ContractError(f"{source}: {_describe(exc)}") from None

    def to_dict(self) -> dict[str, Any]:
        """The contract as JSON/YAML-ready data; ``from_dict(to_dict())`` gives it back."""
        return self.model_dump(mode="json")


def load_contract(path: str | Path) -> Contract:
    """Read a contract from a YAML file; every problem raises ``ContractError`` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"{path}: cannot read contract: {exc.strerror or exc}") from None
    return _parse_yaml(text, source=str(path))


def packaged_contract(name: str) -> Contract:
    """A contract shipped with Shipyard, e.g. ``packaged_contract("fraud")``."""
    resource = importlib.resources.files(_PACKAGED_CONTRACTS) / "contracts" / f"{name}.yaml"
    if not name.isidentifier() or not resource.is_file():
        known = sorted(
            entry.name.removesuffix(".yaml")
            for entry in (importlib.resources.files(_PACKAGED_CONTRACTS) / "contracts").iterdir()
            if entry.name.endswith(".yaml")
        )
        raise NotFoundError(f"no packaged contract {name!r}; known: {', '.join(known) or 'none'}")
    return _parse_yaml(resource.read_text(encoding="utf-8"), source=f"{_PACKAGED_CONTRACTS}:{name}")


def _parse_yaml(text: str, *, source: str) -> Contract:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ContractError(f"{source}: not valid YAML{line}: {problem}") from None
    return Contract.from_dict(data, source=source)


def _describe(exc: ValidationError) -> str:
    """Pydantic's errors as one line: ``columns[3].min: must be a number, got 'abc'``."""
    problems = []
    for error in exc.errors(include_url=False):
        path = _location(error["loc"])
        message = error["msg"].replace("a valid tuple", "a list")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] not in ("contract", "missing"):
            message = f"{message}, got {error['input']!r}"
        problems.append(f"{path}: {message}" if path else message)
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems: " + "; ".join(problems)


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path
