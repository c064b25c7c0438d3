"""Exact order statistics of a series without sorting it (SPEC §3, §11).

Every exact terminal number of a series is a question about ranks: the value
at a given 0-based rank (every percentile method and the early-stopping
estimates, :mod:`registry.core.percentiles`, :mod:`registry.mlperf.early_stopping`)
or how many values lie below a threshold (the display histogram's edges).
The series' HDR histogram counts every value exactly by bucket, and buckets
are intervals of values, so:

1. the cumulative HDR counts name the bucket of each wanted rank and of each
   threshold, and how many values lie below that bucket;
2. one pass over the values (memory chunks and raw-store batches, in
   cache-sized pieces) keeps only those inside the few needed buckets: a
   float64 bit pattern shifted to a log-scale key and one table look-up per
   value, a superset that the HDR's own index function then narrows exactly;
3. ``numpy.partition`` on the kept values answers the ranks, a comparison on
   the kept values of a threshold's bucket answers the counts.

Linear in the number of values, memory bounded by what the needed buckets
hold, and several times faster than a sort. Integer buckets one value wide
(token counts) need no values at all. The HDR counts are checked against
what the pass found; a mismatch (never expected) or integers beyond 2**53
fall back to a sort of everything, which is exact too.

Pure numpy over the arrays it is given: no I/O, no registry, no logging
except that one fallback warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.core.hdr import HdrFold

__all__ = ["CountMismatch", "Selection", "select_exact", "sorted_reference"]

logger = logging.getLogger(__name__)

#: Values per piece of the pass: the temporaries stay in the L2 cache.
_PIECE = 1 << 16
#: Fewer values than this are simply sorted (exact as well, and cheaper there).
SMALL = 4096
#: Integers at or beyond this lose precision as float64 (the display edges' domain).
_FLOAT_EXACT = 2**53

Chunks = Callable[[], Iterable[npt.NDArray[Any]]]


class CountMismatch(ValueError):
    """The values read are not as many as the series counts (a raw-store file cut short)."""


class Selection:
    """What :func:`select_exact` answers: values at the ranks, counts below the cuts."""

    __slots__ = ("below", "method", "values")

    def __init__(self, values: npt.NDArray[Any], below: list[int], method: str) -> None:
        #: the value at each requested rank, in request order, in the series' dtype
        self.values = values
        #: for each requested threshold, how many values are strictly below it
        self.below = below
        #: ``"select"`` or ``"sort"`` (which path answered; for tests and logs)
        self.method = method


def _int_cuts(cuts: Sequence[float]) -> list[int]:
    # v < e  <=>  v < ceil(e) for an integer v (exact below 2**53)
    return [math.ceil(c) for c in cuts]


def sorted_reference(
    chunks: Chunks,
    dtype: Any,
    ranks: Sequence[int],
    cuts: Sequence[float],
    count: int | None = None,
) -> Selection:
    """The same answers from a sort of every value (the fallback, and the tests' oracle)."""
    parts = [np.asarray(c) for c in chunks()]
    data = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype)
    if count is not None and data.size != count:
        raise CountMismatch(f"read {data.size} values, the series counts {count}")
    values = data[np.asarray(ranks, dtype=np.int64)] if len(ranks) else data[:0]
    if (
        data.dtype.kind in "iu"
        and data.size
        and max(abs(int(data[0])), abs(int(data[-1]))) < (_FLOAT_EXACT)
    ):
        keys: npt.NDArray[Any] = np.asarray(_int_cuts(cuts), dtype=np.int64)
    else:
        data = data.astype(np.float64, copy=False)
        keys = np.asarray(cuts, dtype=np.float64)
    below = np.searchsorted(data, keys, side="left").tolist() if len(cuts) else []
    return Selection(values, [int(b) for b in below], "sort")


class _Locator:
    """The HDR facts of one selection: which buckets need their values kept."""

    def __init__(self, hdr: HdrFold, is_float: bool, vmin: Any, vmax: Any) -> None:
        self.hdr = hdr
        self.cum = hdr.cumulative()
        self.counts = hdr.counts
        self.is_float = is_float
        self.idx_low = int(hdr.index_of(np.array([hdr.low], dtype=np.int64))[0])
        self.idx_high = int(hdr.index_of(np.array([hdr.high], dtype=np.int64))[0])
        # buckets holding clamped values are not one value wide, whatever their width
        self.clamped_low = vmin < hdr.low
        self.clamped_high = vmax > hdr.high

    def below(self, b: int) -> int:
        return int(self.cum[b - 1]) if b > 0 else 0

    def single_value(self, b: int) -> int | None:
        """The one value an integer bucket can hold, or None when it holds several."""
        if self.is_float:
            return None
        if (b == self.idx_low and self.clamped_low) or (b == self.idx_high and self.clamped_high):
            return None
        lo, hi = self.hdr.bucket_range(b)
        return lo if lo == hi else None

    def index(self, value: float | int) -> int:
        if self.is_float:
            return int(self.hdr.index_of(np.array([value], dtype=np.float64))[0])
        return int(self.hdr.index_of(np.array([value], dtype=np.int64))[0])


def _key_table(loc: _Locator, buckets: Iterable[int]) -> tuple[npt.NDArray[np.uint8], int]:
    """A look-up table over float64 bit-pattern keys marking the needed buckets' values.

    key(v) = bits(float64(v)) >> shift is monotone for v >= 0 and splits every
    octave into 2**m equal parts, as fine as the HDR's buckets (m = the HDR's
    buckets per octave, at most 2**11). Keys below the table (negative values,
    zero) and above it are clipped onto its ends, which stand for the clamp
    buckets. Marking is generous by one value on each side (floats round into
    their bucket); the exact bucket test comes after.
    """
    m = min(loc.hdr.half_magnitude, 11)
    shift = 52 - m

    def key(v: float) -> int:
        return int(np.float64(v).view(np.int64)) >> shift

    size = key(float(loc.hdr.high) + 1.0) + 2
    table = np.zeros(size, dtype=np.uint8)
    for b in buckets:
        lo, hi = loc.hdr.bucket_range(b)
        k_lo = 0 if b == loc.idx_low else max(0, key(max(float(lo) - 1.0, 0.0)))
        k_hi = size - 1 if b == loc.idx_high else min(size - 1, key(float(hi) + 1.0))
        table[k_lo : k_hi + 1] = 1
    return table, shift


def _collect(
    chunks: Chunks, table: npt.NDArray[np.uint8], shift: int, is_float: bool
) -> tuple[list[npt.NDArray[Any]], int]:
    """The one pass: every value whose key the table marks, piece by piece; and how many
    values there were."""
    fbuf = np.empty(_PIECE, dtype=np.float64)
    mbuf = np.empty(_PIECE, dtype=np.uint8)
    kept: list[npt.NDArray[Any]] = []
    seen = 0
    for chunk in chunks():
        seen += chunk.size
        for start in range(0, chunk.size, _PIECE):
            piece = chunk[start : start + _PIECE]
            n = piece.size
            if is_float:
                keys = fbuf[:n].view(np.int64)
                np.right_shift(piece.view(np.int64), shift, out=keys)
            else:
                f = fbuf[:n]
                f[...] = piece
                keys = f.view(np.int64)
                np.right_shift(keys, shift, out=keys)
            mask = mbuf[:n]
            np.take(table, keys, mode="clip", out=mask)
            hit = piece[mask.view(np.bool_)]
            if hit.size:
                kept.append(hit)
    return kept, seen


def select_exact(
    chunks: Chunks,
    hdr: HdrFold,
    *,
    count: int,
    vmin: Any,
    vmax: Any,
    dtype: Any,
    ranks: Sequence[int],
    cuts: Sequence[float],
    small: int = SMALL,
) -> Selection:
    """Values at 0-based ``ranks`` and counts of values ``< cut`` for each of ``cuts``.

    ``chunks()`` yields the series' values (any order, any pieces; called once,
    twice on the fallback); ``hdr`` must count exactly those values, ``count``
    is their number, ``vmin``/``vmax`` their exact extremes (the rollups).
    Integer series compare with a cut as numpy compares an integer with a
    float (exact below 2**53; beyond, the sort answers). :class:`CountMismatch`
    when ``chunks()`` yields another number of values than ``count``.
    """
    is_float = np.dtype(dtype).kind == "f"
    if count < small or (
        not is_float and max(abs(int(vmin)), abs(int(vmax))) >= _FLOAT_EXACT and len(cuts)
    ):
        return sorted_reference(chunks, dtype, ranks, cuts, count)
    if hdr.total != count:
        logger.warning("HDR holds %d values, the series %d: sorting instead", hdr.total, count)
        return sorted_reference(chunks, dtype, ranks, cuts, count)
    loc = _Locator(hdr, is_float, vmin, vmax)
    cum = loc.cum
    thresholds: list[float | int] = [float(c) for c in cuts] if is_float else [*_int_cuts(cuts)]

    rank_bucket = np.searchsorted(cum, np.asarray(ranks, dtype=np.int64) + 1, side="left")
    cut_bucket = [loc.index(c) for c in thresholds]
    out_values: list[Any] = [None] * len(ranks)
    out_below: list[int | None] = [None] * len(thresholds)
    needed: set[int] = set()
    for i, b in enumerate(rank_bucket.tolist()):
        single = loc.single_value(b)
        if single is None:
            needed.add(b)
        else:
            out_values[i] = single
    for j, (c, b) in enumerate(zip(thresholds, cut_bucket, strict=True)):
        single = loc.single_value(b)
        if int(loc.counts[b]) == 0:
            out_below[j] = loc.below(b)
        elif single is None:
            needed.add(b)
        else:
            out_below[j] = loc.below(b) + (int(loc.counts[b]) if single < c else 0)

    if needed:
        order = sorted(needed)
        table, shift = _key_table(loc, order)
        kept, seen = _collect(chunks, table, shift, is_float)
        if seen != count:
            raise CountMismatch(f"read {seen} values, the series counts {count}")
        pool = np.concatenate(kept) if kept else np.empty(0, dtype=dtype)
        idx = hdr.index_of(pool)
        wanted = np.zeros(loc.counts.size, dtype=np.bool_)
        wanted[order] = True
        inside = wanted[idx]
        pool, idx = pool[inside], idx[inside]
        expected = int(sum(int(loc.counts[b]) for b in order))
        if pool.size != expected:
            logger.warning(
                "exact selection found %d values in the wanted HDR buckets, the HDR counts "
                "%d: sorting instead",
                pool.size,
                expected,
            )
            return sorted_reference(chunks, dtype, ranks, cuts, count)
        # position of each needed bucket's first value inside the pool
        starts = np.cumsum([0] + [int(loc.counts[b]) for b in order[:-1]]).tolist()
        pool_below = dict(zip(order, starts, strict=True))
        positions = {
            i: r - loc.below(b) + pool_below[b]
            for i, (r, b) in enumerate(zip(ranks, rank_bucket.tolist(), strict=True))
            if out_values[i] is None
        }
        if positions:
            kth = sorted(set(positions.values()))
            part = np.partition(pool, kth)
            for i, pos in positions.items():
                out_values[i] = part[pos]
        for j, (c, b) in enumerate(zip(thresholds, cut_bucket, strict=True)):
            if out_below[j] is None:
                in_bucket = pool[idx == b]
                out_below[j] = loc.below(b) + int(np.count_nonzero(in_bucket < c))
    values = np.asarray(out_values, dtype=dtype) if ranks else np.empty(0, dtype=dtype)
    return Selection(values, [int(x) for x in out_below if x is not None], "select")


def iter_chunks(parts: Sequence[npt.NDArray[Any]]) -> Iterator[npt.NDArray[Any]]:
    """``chunks()`` over arrays already in memory."""
    yield from parts
