"""The statistics behind data drift, on sorted numeric samples and aligned category counts.

Each function computes exactly what Evidently's stattest of the same name computes (its
``legacy/calculations/stattests`` modules), only on a cheaper representation: numeric samples
arrive sorted once, so the Wasserstein distance is one pass over two quantile functions
instead of scipy's sort of the pooled data and two binary searches per value.
"""

from __future__ import annotations

import math

import numpy as np

# Evidently norms the Wasserstein distance by the reference's standard deviation, floored so a
# constant reference column does not divide by zero.
MIN_NORM = 0.001


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """The first Wasserstein distance between two samples given sorted ascending.

    W1 is the area between the two quantile functions. Both are step functions, with steps at
    i/n and j/m; in units of 1/(n*m) those are the integers i*m and j*n, so the pieces between
    consecutive steps, and the sample each side holds on a piece, follow from integer arithmetic.
    """
    n, m = len(a), len(b)
    if n == m:
        return float(np.abs(a - b).mean())
    steps = np.concatenate(
        [np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n]
    )
    # Two sorted runs: the stable sort (timsort) merges them in linear time.
    steps.sort(kind="stable")
    widths = np.diff(steps, prepend=0)
    in_a = (steps + m - 1) // m - 1
    in_b = (steps + n - 1) // n - 1
    return float((widths * np.abs(a[in_a] - b[in_b])).sum() / (n * m))


def normed_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Wasserstein distance over the reference's population standard deviation (Evidently's)."""
    return wasserstein_sorted(reference, current) / max(float(reference.std()), MIN_NORM)


def counts_of_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted array and how often each occurs."""
    if len(values) == 0:
        return values, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], starts])
    counts = np.diff(np.concatenate([starts, [len(values)]]))
    return values[starts], counts


def jensen_shannon(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, as scipy's default) of two aligned count vectors."""
    p = p_counts / p_counts.sum()
    q = q_counts / q_counts.sum()
    m = (p + q) / 2
    # 0 * log(0 / m) is 0: only the categories a side has contribute to its divergence.
    left = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / m), 0.0).sum()
    right = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0) / m), 0.0).sum()
    return math.sqrt(max((left + right) / 2, 0.0))


def sturges_counts(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of two sorted samples in numpy's 'sturges' bins over their pooled range.

    This is how Evidently bins a numeric column with more than 20 distinct reference values
    before a Jensen-Shannon comparison. Bins are half-open, the last one closed, as numpy's.
    """
    low = min(a[0], b[0])
    high = max(a[-1], b[-1])
    n_bins = int(math.ceil(math.log2(len(a) + len(b)) + 1))
    edges = np.histogram_bin_edges(np.array([low, high]), bins=n_bins)
    return binned_counts(a, edges), binned_counts(b, edges)


def binned_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of a sorted sample between ``edges``; values beyond them fall in the end bins."""
    below = np.searchsorted(values, edges[1:-1], side="left")
    return np.diff(np.concatenate([[0], below, [len(values)]]))


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (scipy's ``ks_2samp``)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def chisquare_pvalue(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Chi-square p-value of the current counts against the reference's, scaled to its size."""
    from scipy.stats import chisquare

    expected = reference_counts * (current_counts.sum() / reference_counts.sum())
    return float(chisquare(current_counts, expected).pvalue)


def z_pvalue(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Two-sided z-test p-value of two proportions: the share of every value but the first.

    ``*_counts`` are aligned on the sorted union of values; Evidently tests the share of rows
    that differ from the smallest value, and calls one identical value on both sides no drift.
    """
    if len(reference_counts) == 1:
        return 1.0
    n1, n2 = float(reference_counts.sum()), float(current_counts.sum())
    p1 = float(reference_counts[1:].sum()) / n1
    p2 = float(current_counts[1:].sum()) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return math.nan
    # 2 * (1 - Phi(|z|)), written as Evidently writes it, so tiny p-values round alike.
    return 2 * (1 - 0.5 * (1 + math.erf(abs(p1 - p2) / spread / math.sqrt(2))))
