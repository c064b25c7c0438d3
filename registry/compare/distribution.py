"""A series' distribution drawn from its exact values, in a bounded number of points.

:func:`log_histogram` counts the values in log-spaced bins (latencies span
decades); :func:`cdf_points` picks exact order statistics at evenly spaced
probabilities plus the tail (1 - F down to 1/n on a log scale), so a CDF of a
million values is drawn through a few hundred true points and p99.9 stays
visible. Both take values sorted ascending. Pure numbers.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["CDF_POINTS", "HIST_BINS", "cdf_points", "log_histogram"]

HIST_BINS = 60
CDF_POINTS = 400

Array = npt.NDArray[np.float64]


def log_histogram(sorted_values: Array, bins: int = HIST_BINS) -> tuple[Array, Array, int]:
    """(bin edges, counts, values <= 0 left out of the log axis: counted, not hidden)."""
    positive = sorted_values[np.searchsorted(sorted_values, 0.0, side="right") :]
    skipped = int(sorted_values.size - positive.size)
    if positive.size == 0:
        return np.empty(0), np.empty(0), skipped
    lo, hi = float(positive[0]), float(positive[-1])
    if hi <= lo:
        lo, hi = lo / 1.05, hi * 1.05
    edges = np.geomspace(lo, hi, bins + 1)
    # the values are sorted: the bin boundaries are a search away (np.histogram would sort
    # them again); bins are [lo, hi) as numpy's, the last one closed
    idx = np.searchsorted(positive, edges, side="left")
    idx[-1] = positive.size
    counts = np.diff(idx).astype(np.float64)
    return edges, counts, skipped


def cdf_points(sorted_values: Array, points: int = CDF_POINTS) -> tuple[Array, Array]:
    """(value, fraction of values <= it) at about ``points`` exact order statistics."""
    n = sorted_values.size
    if n == 0:
        return np.empty(0), np.empty(0)
    body = np.linspace(0.0, 1.0, points * 3 // 4)
    tail_decades = max(math.log10(n), 1.0)
    tail = 1.0 - np.logspace(-1.0, -tail_decades, points // 4)
    probs = np.unique(np.concatenate([body, tail, [1.0]]))
    ranks = np.unique(np.clip(np.ceil(probs * n).astype(np.int64), 1, n))
    return sorted_values[ranks - 1].astype(np.float64), ranks / n
