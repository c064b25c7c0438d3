"""Fixed histogram bucket bounds and cumulative counts from HDR bytes (SPEC §8).

A series' classic-histogram bounds depend only on its HDR range (lowest and
highest trackable value, carried in the V2 encoding), so every scrape and
every instance with the same series configuration exposes the same ``le``
values and ``histogram_quantile`` can aggregate them. Bounds are the 1-2-5
steps per decade inside that range.

Counting is vectorised: the per-index lowest values of an HDR layout and the
index at which each bound cuts them are computed once per layout and cached;
a scrape then costs one decode, one ``cumsum`` and one fancy index. Nothing
here loops over the counts array in Python, and nothing here decides a number
the registry did not record: it only regroups the HDR counts.
"""

from __future__ import annotations

import base64
import functools
import zlib

import numpy as np
import numpy.typing as npt
from hdrh.codec import HdrCookieException, HdrHistogramSettingsException, HdrLengthException
from hdrh.histogram import HdrHistogram

__all__ = ["BucketCounts", "HdrDecodeError", "bucket_bounds", "cumulative_buckets"]

_STEPS = (1, 2, 5)
_HDR_ERRORS = (HdrCookieException, HdrLengthException, HdrHistogramSettingsException)


class HdrDecodeError(ValueError):
    """HDR bytes that do not decode to a histogram; the message says why."""


class BucketCounts:
    """Cumulative counts per fixed bound (in the series' native unit) plus the total.

    ``bounds[i]`` is the ``le`` of ``cumulative[i]``; ``total`` is the ``+Inf`` count.
    """

    __slots__ = ("bounds", "cumulative", "total")

    def __init__(self, bounds: tuple[int, ...], cumulative: tuple[int, ...], total: int) -> None:
        self.bounds = bounds
        self.cumulative = cumulative
        self.total = total


@functools.lru_cache(maxsize=256)
def bucket_bounds(low: int, high: int) -> tuple[int, ...]:
    """The 1-2-5 values in ``[low, high]`` (both ints ≥ 1), ascending.

    When the range is too narrow to hold one, ``(low, high)`` are the bounds.
    """
    if low < 1 or high < low:
        raise ValueError(f"HDR range [{low}, {high}] is not valid")
    bounds: list[int] = []
    exp = len(str(low)) - 1  # floor(log10(low)) without float rounding
    while True:
        for step in _STEPS:
            b = step * 10**exp
            if b > high:
                return tuple(bounds) if bounds else (low, high)
            if b >= low:
                bounds.append(b)
        exp += 1


@functools.lru_cache(maxsize=256)
def _layout(low: int, high: int, sig_figs: int) -> tuple[tuple[int, ...], npt.NDArray[np.int64]]:
    """(bounds, cut) for one HDR layout: ``cut[i]`` = number of counts indexes whose
    lowest equivalent value is ≤ ``bounds[i]``.

    A value recorded exactly at a bound lies in an HDR bucket whose lowest value is
    ≤ the bound, so it is counted at that ``le``, as Prometheus means it.
    """
    h = HdrHistogram(low, high, sig_figs)
    idx = np.arange(h.counts_len, dtype=np.int64)
    half_mag = int(h.sub_bucket_half_count_magnitude)
    half = int(h.sub_bucket_half_count)
    bucket = (idx >> half_mag) - 1
    sub = (idx & (half - 1)) + half
    first = bucket < 0
    sub = np.where(first, sub - half, sub)
    bucket = np.where(first, 0, bucket)
    lowest = sub << (bucket + int(h.unit_magnitude))
    bounds = bucket_bounds(low, high)
    cut = np.searchsorted(lowest, np.asarray(bounds, dtype=np.int64), side="right")
    cut.setflags(write=False)
    return bounds, cut


def _decode(hdr: bytes) -> HdrHistogram:
    try:
        return HdrHistogram.decode(base64.b64encode(hdr))
    except (ValueError, TypeError, zlib.error, RuntimeError, OverflowError, *_HDR_ERRORS) as exc:
        raise HdrDecodeError(f"invalid HDR encoding: {type(exc).__name__}: {exc}") from exc


def cumulative_buckets(hdr: bytes) -> BucketCounts:
    """Decode ``hdr`` (V2 compressed, raw bytes) into fixed cumulative buckets."""
    h = _decode(hdr)
    low, high, sig = (
        int(h.lowest_trackable_value),
        int(h.highest_trackable_value),
        int(h.significant_figures),
    )
    if low < 1 or high < 2 * low:
        raise HdrDecodeError(f"HDR range [{low}, {high}] is not valid")
    bounds, cut = _layout(low, high, sig)
    counts = np.ctypeslib.as_array(h.counts).view(np.uint64)
    if counts.size < int(cut.max(initial=0)):
        raise HdrDecodeError("HDR counts array is shorter than its layout")
    cum = np.cumsum(counts, dtype=np.uint64)
    total = int(cum[-1]) if cum.size else 0
    picked = np.where(cut > 0, cum[np.maximum(cut, 1) - 1], 0)
    return BucketCounts(bounds, tuple(int(c) for c in picked.tolist()), total)
