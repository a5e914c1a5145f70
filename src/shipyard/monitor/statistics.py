"""CloudWatch statistics (Sum, Average, Minimum, Maximum, SampleCount, pNN) over one window."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shipyard.core.errors import InvalidRequestError

BASIC_STATISTICS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")


def check_statistic(statistic: str) -> str:
    """``statistic`` if CloudWatch knows it (a basic one, or a percentile p0..p99.9...)."""
    if isinstance(statistic, str) and (
        statistic in BASIC_STATISTICS or _PERCENTILE.match(statistic)
    ):
        return statistic
    raise InvalidRequestError(
        f"statistic {statistic!r} is not one of {', '.join(BASIC_STATISTICS)} or p0..p99.9"
    )


def is_percentile(statistic: str) -> bool:
    return bool(_PERCENTILE.match(statistic))


@dataclass(frozen=True)
class Samples:
    """The samples of one window, in the cheapest form that answers every statistic.

    Flags (0/1 per request, e.g. errors) and totals (only a sum per request is kept) need no
    array; raw values (latencies, published metrics) do.
    """

    count: int
    total: float
    ones: int | None = None  # flags: how many samples are 1
    values: np.ndarray | None = None

    @classmethod
    def of_flags(cls, count: int, ones: int) -> Samples:
        return cls(count, float(ones), ones=ones)

    @classmethod
    def of_total(cls, count: int, total: float) -> Samples:
        return cls(count, total)

    @classmethod
    def of_values(cls, chunks: Sequence[Sequence[float]]) -> Samples | None:
        values = (
            np.concatenate([np.asarray(c, dtype=np.float64) for c in chunks]) if chunks else None
        )
        if values is None or values.size == 0:
            return None
        return cls(int(values.size), float(values.sum()), values=values)


def statistic_of(samples: Samples, statistic: str) -> float:
    """One statistic of ``samples`` (which hold at least one sample)."""
    if statistic == "SampleCount":
        return float(samples.count)
    if statistic == "Sum":
        return samples.total
    if statistic == "Average":
        return samples.total / samples.count
    if samples.values is not None:
        return _of_values(samples.values, statistic)
    if samples.ones is not None:
        return _of_flags(samples.count, samples.ones, statistic)
    raise InvalidRequestError(
        f"statistic {statistic} needs every sample; this metric keeps only its Sum, Average "
        "and SampleCount"
    )


def _of_values(values: np.ndarray, statistic: str) -> float:
    if statistic == "Minimum":
        return float(values.min())
    if statistic == "Maximum":
        return float(values.max())
    value = float(np.percentile(values, float(statistic[1:]), method="higher"))
    return value if math.isfinite(value) else 0.0


def _of_flags(count: int, ones: int, statistic: str) -> float:
    if statistic == "Minimum":
        return 1.0 if ones == count else 0.0
    if statistic == "Maximum":
        return 1.0 if ones > 0 else 0.0
    # The 'higher' percentile of count sorted 0/1 samples, without building them.
    rank = math.ceil(float(statistic[1:]) / 100 * (count - 1))
    return 1.0 if rank >= count - ones else 0.0
