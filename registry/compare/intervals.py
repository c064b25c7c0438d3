"""95 % confidence intervals for the difference of two runs' statistics, from exact values.

Two methods, both named in every output that uses them (:data:`MEAN_METHOD`,
:data:`QUANTILE_METHOD`):

- means: Welch's t interval (unequal variances, Welch-Satterthwaite degrees of
  freedom). The runs here have hundreds to millions of samples, where the
  central limit theorem holds even for skewed latencies, and it costs two
  passes where a bootstrap of a million values costs thousands.
- quantiles: distribution-free order statistics (Price & Bonett 2002, extended
  from the median to any quantile). For each run the binomial distribution of
  "how many samples fall below the true quantile" gives the ranks of an
  order-statistic interval that holds for any continuous distribution; its
  half-width over z is that run's standard error; the two errors add in
  quadrature around the difference of the nearest-rank estimates (the Report's
  own percentile method). No resampling: one sort (or partition) per run.

Every function works on the last axis, so a test can check coverage over
hundreds of synthetic trials in one vectorised call. Pure numbers: nothing
here reads a file or prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "LEVEL",
    "MEAN_METHOD",
    "QUANTILE_METHOD",
    "Interval",
    "mean_diff",
    "nearest_rank",
    "needed_ranks",
    "quantile_diff",
    "quantile_standard_error",
]

LEVEL = 0.95
MEAN_METHOD = "Welch t interval on the per-sample values"
QUANTILE_METHOD = (
    "distribution-free order-statistic interval (binomial ranks per run, Price-Bonett "
    "standard errors combined)"
)

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    """A difference ``run - base`` with its interval (all in the series' base unit)."""

    base: float
    run: float
    diff: float
    low: float
    high: float

    @property
    def spans_zero(self) -> bool:
        """No detectable difference at this level: the interval contains 0 (or is unknown)."""
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return True
        return self.low <= 0.0 <= self.high


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def mean_diff(base: Any, run: Any, level: float = LEVEL) -> tuple[Array, Array, Array]:
    """Welch: (difference of means, low, high) along the last axis of ``base`` and ``run``."""
    from scipy import stats  # only here: importing scipy.stats costs ~0.5 s

    a = np.asarray(base, dtype=np.float64)
    b = np.asarray(run, dtype=np.float64)
    na, nb = a.shape[-1], b.shape[-1]
    diff = b.mean(axis=-1) - a.mean(axis=-1)
    if na < 2 or nb < 2:
        nan = np.full_like(diff, np.nan)
        return diff, nan, nan
    va = a.var(axis=-1, ddof=1) / na
    vb = b.var(axis=-1, ddof=1) / nb
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    df = np.where(np.isfinite(df), df, float(na + nb - 2))
    t = stats.t.ppf(0.5 + level / 2, df)
    return diff, diff - t * se, diff + t * se


def nearest_rank(sorted_values: Array, q: float) -> Array:
    """The nearest-rank ``q``-quantile (0 < q < 1) of values sorted along the last axis."""
    n = sorted_values.shape[-1]
    k = min(max(math.ceil(q * n), 1), n)
    return np.asarray(sorted_values[..., k - 1], dtype=np.float64)


def _at_rank(sorted_values: Array, rank: float) -> Array:
    """The order statistic at 1-based fractional ``rank`` (linear between neighbours)."""
    n = sorted_values.shape[-1]
    r = min(max(rank, 1.0), float(n))
    i = math.floor(r)
    f = r - i
    j = min(i + 1, n)
    low = np.asarray(sorted_values[..., i - 1], dtype=np.float64)
    high = np.asarray(sorted_values[..., j - 1], dtype=np.float64)
    return low * (1.0 - f) + high * f


def needed_ranks(n: int, q: float, level: float = LEVEL) -> list[int]:
    """The 0-based ranks :func:`quantile_diff` reads for ``q`` in ``n`` values: values
    partitioned at these (``np.partition``) serve as well as sorted ones, in O(n)."""
    if n == 0:
        return []
    half = _z(level) * math.sqrt(n * q * (1.0 - q))
    centre = n * q + 0.5
    out = {min(max(math.ceil(q * n), 1), n) - 1}
    for rank in (centre - half, centre + half):
        r = min(max(rank, 1.0), float(n))
        out.update({math.floor(r) - 1, min(math.floor(r) + 1, n) - 1})
    return sorted(out)


def quantile_standard_error(sorted_values: Array, q: float, level: float = LEVEL) -> Array:
    """The order-statistic standard error of the ``q``-quantile along the last axis.

    The count of samples below the true quantile is Binomial(n, q): the ranks
    nq ± z·sqrt(nq(1-q)) (+½ for continuity) bound it at ``level``, so the
    values at those ranks bound the quantile whatever the distribution; their
    distance over 2z is the standard error.
    """
    n = sorted_values.shape[-1]
    z = _z(level)
    half = z * math.sqrt(n * q * (1.0 - q))
    centre = n * q + 0.5
    width = _at_rank(sorted_values, centre + half) - _at_rank(sorted_values, centre - half)
    return width / (2 * z)


def quantile_diff(
    base_sorted: Array, run_sorted: Array, q: float, level: float = LEVEL
) -> tuple[Array, Array, Array]:
    """(difference of ``q``-quantiles, low, high) for values sorted along the last axis."""
    diff = nearest_rank(run_sorted, q) - nearest_rank(base_sorted, q)
    if base_sorted.shape[-1] < 2 or run_sorted.shape[-1] < 2:
        nan = np.full_like(diff, np.nan)
        return diff, nan, nan
    se = np.hypot(
        quantile_standard_error(base_sorted, q, level),
        quantile_standard_error(run_sorted, q, level),
    )
    half = _z(level) * se
    return diff, diff - half, diff + half
