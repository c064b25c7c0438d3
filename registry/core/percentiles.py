"""Which sorted value a percentile is: the three selectable methods of SPEC §3.

Each method maps a percentile ``p`` (in percent, 0..100) and a count ``n`` to a
0-based index into the ascending-sorted values, so a caller that already has
the values sorted (or can locate a rank in a histogram) selects by index and
never interpolates: every percentile is an observed value.

* ``nearest-rank`` (the default): 1-based rank ``ceil(p/100 * n)``, rank 1 for
  p = 0, in exact rationals on ``p`` as written in decimal (in floats
  ``99.9 / 100 * 1000`` is ``999.0000000000001`` and would round up).
* ``numpy-lower``: what ``numpy.percentile(sorted, p, method="lower")`` picks,
  which is upstream's exact path: ``floor((n - 1) * (p / 100))`` evaluated in
  float64 exactly as numpy evaluates it (``p / 100`` by ``true_divide``, the
  product in float64, then ``floor``), so even its rounding quirks agree.
* ``loadgen``: MLPerf LoadGen's ``sorted[n * percentile]`` (``results.cc``):
  LoadGen holds the percentile as a double fraction (``0.999``, the nearest
  double to the decimal) and indexes with ``size_t * double``, truncated. We
  reproduce that double arithmetic (so ``n = 100, p = 29`` gives index 28, as
  LoadGen does, not 29) and cap the index at ``n - 1`` for p = 100, which
  LoadGen never asks for.

Pure functions; nothing here touches a registry or any value array.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

__all__ = [
    "PercentileMethod",
    "nearest_rank",
    "percent_to_fraction",
    "rank_index",
    "rank_indices",
]


class PercentileMethod(enum.StrEnum):
    """How exact (terminal) percentiles pick their value; see the module docstring."""

    NEAREST_RANK = "nearest-rank"
    NUMPY_LOWER = "numpy-lower"
    LOADGEN = "loadgen"

    @classmethod
    def parse(cls, value: PercentileMethod | str) -> PercentileMethod:
        """``value`` as a method; ``ValueError`` naming the choices when it is none."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(
                f"unknown percentile method {value!r}; choose one of {choices}"
            ) from None


@functools.lru_cache(maxsize=256)
def _decimal_fraction(p: float) -> Fraction:
    # repr gives the shortest decimal that reads back as p: "p as written"
    return Fraction(repr(float(p)))


@functools.lru_cache(maxsize=256)
def percent_to_fraction(p: float) -> float:
    """``p`` percent as the double nearest to the decimal ``p / 100`` (``99.9`` -> ``0.999``).

    This is the double LoadGen holds for a percentile it is configured with
    (``0.999``), not ``99.9 / 100`` (``0.9990000000000001``).
    """
    return float(_decimal_fraction(p) / 100)


def nearest_rank(p: float, n: int) -> int:
    """1-based nearest rank of percentile ``p`` among ``n`` values (rank 1 for p = 0)."""
    if n <= 0:
        raise ValueError("nearest rank of an empty set")
    return min(n, max(1, math.ceil(_decimal_fraction(p) * n / 100)))


def _check(p: float, n: int) -> None:
    if n <= 0:
        raise ValueError("percentile of an empty set")
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100], got {p!r}")


def rank_index(method: PercentileMethod | str, p: float, n: int) -> int:
    """0-based index into the ascending-sorted values of percentile ``p`` among ``n``."""
    p = float(p)
    _check(p, n)
    m = PercentileMethod.parse(method)
    if m is PercentileMethod.NEAREST_RANK:
        return nearest_rank(p, n) - 1
    if m is PercentileMethod.NUMPY_LOWER:
        # Python floats are IEEE binary64, the same operations numpy performs
        return math.floor((n - 1) * (p / 100))
    return min(n - 1, int(float(n) * percent_to_fraction(p)))


def rank_indices(
    method: PercentileMethod | str, grid: Sequence[float], n: int
) -> npt.NDArray[np.int64]:
    """:func:`rank_index` of every ``p`` of ``grid``, as an int64 array in grid order."""
    return np.fromiter((rank_index(method, p, n) for p in grid), dtype=np.int64, count=len(grid))
