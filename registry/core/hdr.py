"""Vectorised folding into, and reading from, an ``hdrh`` HdrHistogram.

``hdrh.histogram.HdrHistogram.record_value`` costs a Python call per value.
Here a whole batch is bucketed with numpy using the same index arithmetic as
``hdrh`` (so the counts array, and therefore the V2 encoding, is exactly what
recording value by value would give) and added to the histogram's own counts
array through a zero-copy numpy view.

Reading (percentiles, display buckets) also works on that numpy view; nothing
here loops over the counts array in Python.
"""

from __future__ import annotations

import base64
import math
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

__all__ = ["HdrFold", "bucket_origins", "count_over", "relative_precision"]

_CHUNK = 1 << 16

IntArray = npt.NDArray[np.int64]
#: a counts-array index, or an array of them
Index = TypeVar("Index", int, IntArray)


def bucket_origins(index: Index, h: HdrHistogram) -> tuple[Index, Index]:
    """``(sub, shift)`` of a counts-array ``index`` of ``h``'s layout (an int or an
    int64 array): the values counted there are ``sub << shift`` up to
    ``(sub << shift) + (1 << shift) - 1``.

    hdrh's ``get_value_from_index``: the one place this arithmetic is written
    (the HDR readers here and the exporter's fixed buckets use it). Plain
    arithmetic, no numpy call, so one int costs what it did inline.
    """
    bucket = (index >> int(h.sub_bucket_half_count_magnitude)) - 1
    # bucket -1 is the lower half of bucket 0: there the sub-bucket is the index itself
    kept = bucket >= 0
    half = int(h.sub_bucket_half_count)
    sub = (index & (half - 1)) + half * kept
    shift = bucket * kept + int(h.unit_magnitude)
    return sub, shift


class HdrFold:
    """An ``HdrHistogram`` plus the numpy machinery to fold batches into it.

    Values outside ``[low, high]`` are clamped into that range; the caller
    keeps exact rollups separately, so clamping only ever affects HDR-derived
    views. ``clamped`` counts how many values were clamped.
    """

    def __init__(self, low: int, high: int, sig_figs: int) -> None:
        self.low = int(low)
        self.high = int(high)
        self.histogram = HdrHistogram(self.low, self.high, sig_figs)
        h = self.histogram
        self.counts: npt.NDArray[np.uint64] = np.ctypeslib.as_array(h.counts).view(np.uint64)
        self._unit_mag = int(h.unit_magnitude)
        self._half_mag = int(h.sub_bucket_half_count_magnitude)
        self._half_count = int(h.sub_bucket_half_count)
        self._mask = int(h.sub_bucket_mask)
        self.clamped = 0
        self._cumsum: npt.NDArray[np.int64] | None = None
        self._encoded: bytes | None = None

    # -- writing -------------------------------------------------------------

    def fold(self, values: npt.NDArray[np.int64] | npt.NDArray[np.float64]) -> None:
        """Add every value of ``values`` (1-D) to the histogram."""
        if values.size == 0:
            return
        v, n_clamped = self._clamped(values)
        self.clamped += n_clamped
        vmin, vmax = int(v.min()), int(v.max())
        size = self.counts.size
        # cache-sized chunks keep the index temporaries in L2: about 3x faster
        added = np.zeros(size, dtype=np.int64)
        for start in range(0, v.size, _CHUNK):
            added += np.bincount(self._indexes(v[start : start + _CHUNK], vmax), minlength=size)
        self.counts += added.astype(np.uint64)
        h = self.histogram
        h.total_count += int(v.size)
        h.min_value = min(h.min_value, vmin)
        h.max_value = max(h.max_value, vmax)
        self._cumsum = None
        self._encoded = None

    def _clamped(
        self, values: npt.NDArray[np.int64] | npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], int]:
        """``values`` as the int64 values the histogram counts (rounded, clamped), and
        how many were clamped. The one mapping both :meth:`fold` and :meth:`index_of` use."""
        if values.dtype.kind == "f":
            v = np.rint(np.nan_to_num(values, nan=self.low, posinf=self.high, neginf=self.low))
            v = np.clip(v, self.low, self.high).astype(np.int64)
            return v, int(np.count_nonzero((values < self.low) | (values > self.high)))
        lo, hi = int(values.min()), int(values.max())
        if lo < self.low or hi > self.high:
            n = int(np.count_nonzero((values < self.low) | (values > self.high)))
            return np.clip(values, self.low, self.high).astype(np.int64, copy=False), n
        return values.astype(np.int64, copy=False), 0

    def index_of(
        self, values: npt.NDArray[np.int64] | npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int64]:
        """The counts-array index :meth:`fold` would add each of ``values`` to.

        Monotone non-decreasing in the value, so every bucket is an interval of
        raw values: what lets the exact selection locate ranks by bucket.
        """
        if values.size == 0:
            return np.empty(0, dtype=np.int64)
        v, _ = self._clamped(values)
        return self._indexes(v, int(v.max()))

    def bucket_range(self, index: int) -> tuple[int, int]:
        """Lowest and highest (clamped, rounded) value counted at ``index``."""
        sub, shift = bucket_origins(int(index), self.histogram)
        return sub << shift, (sub << shift) + (1 << shift) - 1

    @property
    def half_magnitude(self) -> int:
        """log2 of the buckets per octave: the resolution a bucket locator needs."""
        return self._half_mag

    def add_encoded(self, encoded: bytes) -> None:
        """Add a V2 encoding (raw bytes, as :meth:`encode` gives) of a histogram with
        the same range and precision: counts add exactly (``ValueError`` otherwise)."""
        other = HdrHistogram.decode(base64.b64encode(encoded))
        h = self.histogram
        if (
            other.lowest_trackable_value != h.lowest_trackable_value
            or other.highest_trackable_value != h.highest_trackable_value
            or other.significant_figures != h.significant_figures
        ):
            raise ValueError(
                "HDR data with another range or precision: "
                f"[{other.lowest_trackable_value}, {other.highest_trackable_value}] "
                f"at {other.significant_figures} figures"
            )
        if other.get_total_count():
            h.add(other)
        self._cumsum = None
        self._encoded = None

    def cumulative(self) -> npt.NDArray[np.int64]:
        """Running totals of the counts array (cached until the next fold)."""
        return self._cumulative()

    def _indexes(self, v: npt.NDArray[np.int64], vmax: int) -> npt.NDArray[np.int64]:
        """hdrh's ``_counts_index_for`` for a whole array (in-place arithmetic, few temporaries)."""
        masked = v | self._mask
        # bit length = IEEE-754 exponent + 1, read straight from the float64 bits
        bitlen = masked.astype(np.float64).view(np.int64)
        bitlen >>= 52
        bitlen -= 1022
        if (vmax | self._mask) >= 2**53:
            # int -> float rounding can overshoot by one just below a power of two
            bitlen -= np.left_shift(1, bitlen - 1, dtype=np.int64) > masked
        bitlen -= self._unit_mag + self._half_mag + 1  # now the bucket index
        sub_bucket = np.right_shift(v, bitlen + self._unit_mag)
        bitlen += 1
        bitlen <<= self._half_mag
        bitlen += sub_bucket
        bitlen -= self._half_count
        return bitlen

    # -- reading -------------------------------------------------------------

    @property
    def total(self) -> int:
        return int(self.histogram.total_count)

    def _cumulative(self) -> npt.NDArray[np.int64]:
        if self._cumsum is None:
            self._cumsum = np.cumsum(self.counts.astype(np.int64))
        return self._cumsum

    def value_at_rank(self, rank: int) -> int:
        """Highest equivalent value of the bucket holding the ``rank``-th value (1-based)."""
        index = int(np.searchsorted(self._cumulative(), rank, side="left"))
        h = self.histogram
        return int(h.get_highest_equivalent_value(h.get_value_from_index(index)))

    def nonzero_buckets(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """(representative value, count) of every non-empty bucket, ascending."""
        idx = np.flatnonzero(self.counts)
        if idx.size == 0:
            return np.empty(0), np.empty(0, dtype=np.int64)
        sub, shift = bucket_origins(idx, self.histogram)
        width = np.exp2(shift)
        lowest = sub.astype(np.float64) * width
        return lowest + (width - 1) / 2, self.counts[idx].astype(np.int64)

    def encode(self) -> bytes:
        """HdrHistogram V2 compressed encoding as raw bytes (no base64); cached until a fold."""
        if self._encoded is None:
            self._encoded = base64.b64decode(self.histogram.encode())
        return self._encoded


def relative_precision(sig_figs: int) -> float:
    """Worst relative error of an HDR-derived value for in-range data."""
    return math.pow(10.0, -sig_figs)


def count_over(hdr: bytes, limit: int) -> tuple[int, int, int]:
    """``(total, surely_over, maybe_over)`` of an encoded HDR histogram against ``limit``.

    A value is over when it is greater than ``limit``. HDR buckets hold values
    within their precision, so a bucket entirely above the limit is surely
    over and the one straddling it may be either: the true count over lies in
    ``[surely_over, surely_over + maybe_over]``. ``ValueError`` for bytes that
    do not decode.
    """
    try:
        h = HdrHistogram.decode(base64.b64encode(hdr))
    except Exception as exc:  # hdrh raises a zoo of types for bad input
        raise ValueError(f"invalid HDR encoding: {type(exc).__name__}: {exc}") from None
    counts = np.ctypeslib.as_array(h.counts).view(np.uint64).astype(np.int64)
    sub, shift = bucket_origins(np.arange(counts.size, dtype=np.int64), h)
    lowest = sub << shift
    highest = lowest + np.left_shift(1, shift) - 1
    surely = int(counts[lowest > limit].sum())
    maybe = int(counts[(lowest <= limit) & (highest > limit)].sum())
    return int(counts.sum()), surely, maybe
