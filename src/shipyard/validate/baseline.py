"""Model Monitor baselines: SageMaker's statistics.json and constraints.json, and contracts.

``infer_baseline`` does what SageMaker's baseline job (the ``sagemaker-model-monitor-analyzer``
container) does for a dataset: per-feature statistics and suggested constraints, in the
container's exact JSON structure. ``contract_from_baseline`` turns a constraints.json, ours or
one SageMaker wrote, into a shipyard ``Contract`` that ``validate_frame`` enforces. Example::

    baseline = infer_baseline(pl.read_parquet("train.parquet"))
    write_baseline(baseline, "baseline/")          # statistics.json, constraints.json
    contract = contract_from_baseline(Path("baseline/constraints.json"))
    outcome = validate_frame(contract, pl.read_parquet("today.parquet"))

How features are typed and summarised:

- Types come from the frame's dtypes (the container parses CSV/JSON text instead): integers are
  ``Integral``; floats and decimals ``Fractional``; text, booleans, categoricals and times
  ``String``, booleans as ``"true"``/``"false"`` as the container reads them from CSV or JSON;
  a column with no present value is ``Unknown`` and carries no statistics block.
- NaN and ±inf count as missing in numeric columns (JSON cannot encode them).
- ``std_dev`` is the population standard deviation, as Deequ (the container's engine) computes.
- ``distribution.kll.buckets`` are 10 equal-width buckets from min to max; each holds
  ``lower_bound <= x < upper_bound``, the last one also its upper bound (the max).
- ``distribution.kll.sketch`` is not a real KLL sketch. It has KLL's shape, with Deequ's default
  parameters ``{"c": 0.64, "k": 2048.0}``, but ``data`` holds one level of exact quantiles: every
  sorted value when there are at most k of them (exactly what KLL holds before it first
  compacts), else k values at evenly spaced ranks from the min to the max.
- ``string_statistics.distribution.categorical.buckets`` lists the 50 most frequent values (ties
  in value order); ``distinct_count`` is exact but written as a double, as the container does.
- Columns whose names start with ``_`` are ingestion metadata and are left out.
- Sensitive columns (``infer_baseline(frame, sensitive=...)``, e.g. a contract's columns marked
  ``sensitive: true``) record counts only (present, missing, distinct): no moments, min, max or
  distribution for numbers, no categorical buckets for strings, no suggested domain.

Suggested constraints:

- ``completeness``: the observed share of present values (1.0 makes a contract column required).
- ``num_constraints.is_non_negative``: for every numeric feature, whether its min is >= 0.
- ``string_constraints.domains``: the sorted distinct values of a string feature that has at most
  50 of them, and at most one per 10 present values (so ids and free text never get a domain).
- ``monitoring_config``: the container's defaults (constraint evaluation and metrics enabled,
  thresholds 1.0, Robust distribution comparison at 0.1).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from shipyard.core.errors import StorageError
from shipyard.validate._baseline_contract import build_contract
from shipyard.validate._baseline_profile import profile
from shipyard.validate.contract import Contract

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"


@dataclass(frozen=True)
class Baseline:
    """A dataset's SageMaker statistics.json and constraints.json content, as plain JSON data."""

    statistics: dict[str, Any]
    constraints: dict[str, Any]

    @property
    def item_count(self) -> int:
        """How many rows the baseline was computed from."""
        return int(self.statistics["dataset"]["item_count"])

    @property
    def feature_types(self) -> dict[str, str]:
        """Each feature's inferred type (Integral, Fractional, String or Unknown), in order."""
        return {f["name"]: f["inferred_type"] for f in self.constraints["features"]}


def infer_baseline(
    frame: pl.DataFrame | pl.LazyFrame, *, sensitive: Collection[str] = ()
) -> Baseline:
    """Statistics and suggested constraints for ``frame``, as SageMaker's baseline job writes them.

    The columns named in ``sensitive`` get counts only, no statistic that shows their values.
    Raises ``DataError`` for a frame with no rows, or with a nested or binary column.
    """
    statistics, constraints = profile(frame, sensitive)
    return Baseline(statistics=statistics, constraints=constraints)


def write_baseline(baseline: Baseline, out_dir: str | Path) -> tuple[Path, Path]:
    """Write statistics.json and constraints.json into ``out_dir``; returns their paths.

    Each file is written to a temporary name and renamed, so readers never see half a file.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return (
            _write_json(out_dir / STATISTICS_FILE, baseline.statistics),
            _write_json(out_dir / CONSTRAINTS_FILE, baseline.constraints),
        )
    except OSError as exc:
        raise StorageError(
            f"cannot write the baseline to {out_dir}: {exc.strerror or exc}; "
            "pick a writable directory"
        ) from None


def contract_from_baseline(
    constraints: str | Path | Mapping[str, Any],
    statistics: str | Path | Mapping[str, Any] | None = None,
    *,
    name: str = "baseline",
) -> Contract:
    """A contract enforcing a constraints.json: ours, or one SageMaker's baseline job wrote.

    ``completeness`` 1.0 makes a column required; Integral, Fractional and String become int,
    float and string (any other inferred type becomes string); ``is_non_negative`` becomes
    ``min: 0`` and ``domains`` become ``allowed``. Optional keys may be absent. When
    ``statistics`` is given, every constrained feature must appear in it with the same
    inferred type, so a mismatched pair of files fails. The contract's version is a digest of
    the constraints. Malformed input raises ``ContractError`` naming the file and the field.
    """
    return build_contract(constraints, statistics, name=name)


def _write_json(path: Path, data: dict[str, Any]) -> Path:
    # allow_nan=False: NaN or infinity would make the file unreadable to strict JSON parsers.
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
