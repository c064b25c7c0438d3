"""Exact rollups of a batch of recorded values: count, total, min, max, sum of squares.

Integer batches give exact Python ints whatever their size: numpy's int64
would overflow on sums of squares of nanosecond latencies, so squares are
summed over 21-bit limbs in chunks that cannot overflow and the partial sums
are combined in Python ints. Float batches use numpy's pairwise summation.

Pure functions over numpy arrays; never called on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Rollup", "rollup_of"]

_LIMB_BITS = 21
_LIMB_MASK = (1 << _LIMB_BITS) - 1
# Products of two limbs are < 2**42, so up to 2**21 of them sum safely in int64;
# 2**16 keeps the limb temporaries in cache.
_LIMB_CHUNK = 1 << 16


@dataclass(slots=True)
class Rollup:
    """Running exact aggregates; ``merge`` folds another batch in."""

    count: int = 0
    total: int | float = 0
    min: int | float = 0
    max: int | float = 0
    sum_sq: int | float = 0

    def merge(self, other: Rollup) -> None:
        if other.count == 0:
            return
        if self.count == 0:
            self.min, self.max = other.min, other.max
        else:
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total
        self.sum_sq += other.sum_sq


def _exact_int_sum(values: npt.NDArray[np.int64], max_abs: int) -> int:
    if max_abs == 0:
        return 0
    chunk = max(1, (2**63 - 1) // max_abs)
    if chunk >= values.size:
        return int(values.sum(dtype=np.int64))
    return sum(int(values[i : i + chunk].sum(dtype=np.int64)) for i in range(0, values.size, chunk))


def _exact_int_sum_sq(values: npt.NDArray[np.int64], max_abs: int) -> int:
    if max_abs == 0:
        return 0
    if max_abs * max_abs * values.size < 2**63:
        return int(np.dot(values, values))
    mags = np.abs(values)
    n_limbs = (int(max_abs).bit_length() + _LIMB_BITS - 1) // _LIMB_BITS
    total = 0
    for start in range(0, mags.size, _LIMB_CHUNK):
        part = mags[start : start + _LIMB_CHUNK]
        limbs = [(part >> (_LIMB_BITS * k)) & _LIMB_MASK for k in range(n_limbs)]
        for i in range(n_limbs):
            total += int(np.dot(limbs[i], limbs[i])) << (2 * _LIMB_BITS * i)
            for j in range(i + 1, n_limbs):
                total += int(np.dot(limbs[i], limbs[j])) << (_LIMB_BITS * (i + j) + 1)
    return total


def rollup_of(values: npt.NDArray[np.int64] | npt.NDArray[np.float64]) -> Rollup:
    """Exact rollup of one batch (``values`` is int64 or float64, 1-D)."""
    n = int(values.size)
    if n == 0:
        return Rollup()
    if values.dtype.kind == "f":
        return Rollup(
            count=n,
            total=float(values.sum()),
            min=float(values.min()),
            max=float(values.max()),
            sum_sq=float(np.dot(values, values)),
        )
    lo, hi = int(values.min()), int(values.max())
    max_abs = max(abs(lo), abs(hi))
    return Rollup(
        count=n,
        total=_exact_int_sum(values, max_abs),  # type: ignore[arg-type]
        min=lo,
        max=hi,
        sum_sq=_exact_int_sum_sq(values, max_abs),  # type: ignore[arg-type]
    )
