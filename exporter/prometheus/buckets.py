"""Fixed histogram bucket bounds and cumulative counts from HDR bytes (SPEC §8).

Bounds never depend on the data, so every scrape and every instance exposes
the same ``le`` values and ``histogram_quantile`` can add instances up:

* the aggregator's latency series have a fixed table over a range that fits
  the quantity, log-spaced on the E24 preferred numbers (24 per decade, steps
  of 4-15 %, so ``histogram_quantile`` lands within a few percent of the
  exact quantile): TTFT 1 ms..100 s, TPOT 0.1 ms..10 s, end-to-end latency
  10 ms..1 h; chunk gaps on E12 (12 per decade) over 0.1 ms..60 s; token
  lengths on 1-2-5 over 1..1,000,000;
* every configured constraint limit of the series is added as a bound, so
  ``le="<limit>"`` counts the samples within it;
* ``--buckets SERIES=b1,b2,...`` replaces a series' table (the limits are
  still added);
* any other series gets the 1-2-5 steps inside its HDR range (lowest and
  highest trackable value, carried in the V2 encoding).

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
from decimal import Decimal, InvalidOperation

import numpy as np
import numpy.typing as npt
from hdrh.codec import HdrCookieException, HdrHistogramSettingsException, HdrLengthException
from hdrh.histogram import HdrHistogram

from registry.core.hdr import bucket_origins

__all__ = [
    "BUCKET_SERIES",
    "SERIES_BOUNDS",
    "BucketCounts",
    "HdrDecodeError",
    "bounds_for",
    "bucket_bounds",
    "cumulative_buckets",
    "parse_bucket_spec",
]

_STEPS = (1, 2, 5)
#: The E24 and E12 preferred numbers (IEC 60063), times ten so that they are ints.
_E24 = (
    10,
    11,
    12,
    13,
    15,
    16,
    18,
    20,
    22,
    24,
    27,
    30,
    33,
    36,
    39,
    43,
    47,
    51,
    56,
    62,
    68,
    75,
    82,
    91,
)
_E12 = (10, 12, 15, 18, 22, 27, 33, 39, 47, 56, 68, 82)


def _series_of(mantissas: tuple[int, ...], low: int, high: int) -> tuple[int, ...]:
    """Every ``m * 10**k`` (``m`` a mantissa times ten) in ``[low, high]``, ascending."""
    out: list[int] = []
    exp = 0
    while True:
        for m in mantissas:
            v = m * 10**exp // 10
            if v > high:
                return tuple(out)
            if v >= low and m * 10**exp % 10 == 0:
                out.append(v)
        exp += 1


_MS = 1_000_000
#: The fixed bounds of the aggregator's series, in their native unit (ns, tokens).
SERIES_BOUNDS: dict[str, tuple[int, ...]] = {
    "ttft_ns": _series_of(_E24, 1 * _MS, 100_000 * _MS),
    "tpot_ns": _series_of(_E24, _MS // 10, 10_000 * _MS),
    "sample_latency_ns": _series_of(_E24, 10 * _MS, 3_600_000 * _MS),
    "chunk_delta_ns": _series_of(_E12, _MS // 10, 60_000 * _MS),
    "isl": _series_of((10, 20, 50), 1, 1_000_000),
    "osl": _series_of((10, 20, 50), 1, 1_000_000),
}
#: What ``--buckets`` accepts → (registry series, native units per exported unit).
BUCKET_SERIES: dict[str, tuple[str, int]] = {
    "ttft": ("ttft_ns", 1_000_000_000),
    "tpot": ("tpot_ns", 1_000_000_000),
    "sample_latency": ("sample_latency_ns", 1_000_000_000),
    "latency": ("sample_latency_ns", 1_000_000_000),
    "chunk_delta": ("chunk_delta_ns", 1_000_000_000),
    "isl": ("isl", 1),
    "osl": ("osl", 1),
}
_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}
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
def bounds_for(
    series: str,
    hdr_low: int,
    hdr_high: int,
    limits: tuple[int, ...] = (),
    override: tuple[int, ...] | None = None,
) -> tuple[int, ...]:
    """The fixed bounds of ``series`` (native unit): its table (or ``override``), plus
    every limit in ``limits``; the 1-2-5 steps of the HDR range for a series with no table."""
    base = override if override is not None else SERIES_BOUNDS.get(series)
    if base is None:
        base = bucket_bounds(hdr_low, hdr_high)
    return tuple(sorted(set(base) | {int(x) for x in limits if x >= 1}))


def parse_bucket_spec(text: str) -> tuple[str, tuple[int, ...]]:
    """``SERIES=b1,b2,...`` → (registry series, bounds in its native unit).

    Time series take seconds (or a unit per value: ``ttft=1ms,5ms,0.1s``),
    token series whole tokens. ``ValueError`` with one line when it is wrong.
    """
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise ValueError(f"--buckets {text!r}: expected SERIES=b1,b2,... (e.g. ttft=0.01,0.05,0.1)")
    known = BUCKET_SERIES.get(name) or BUCKET_SERIES.get(name.removesuffix("_ns"))
    if known is None:
        raise ValueError(
            f"--buckets {text!r}: unknown series {name!r}; choose one of {', '.join(BUCKET_SERIES)}"
        )
    series, scale = known
    out: set[int] = set()
    for item in values.split(","):
        item = item.strip()
        unit = next((u for u in ("ms", "us", "s") if item.endswith(u)), None)
        number = item[: -len(unit)] if unit else item
        factor = scale if unit is None else _UNITS[unit]
        if unit is not None and scale == 1:
            raise ValueError(f"--buckets {text!r}: {name} counts tokens; give plain numbers")
        try:
            value = Decimal(number.strip()) * factor
        except InvalidOperation:
            raise ValueError(f"--buckets {text!r}: {item!r} is not a number") from None
        if not value.is_finite() or value <= 0:
            raise ValueError(f"--buckets {text!r}: bounds must be finite and > 0, got {item!r}")
        if value != value.to_integral_value():
            what = "a whole number of tokens" if scale == 1 else "a whole number of nanoseconds"
            raise ValueError(f"--buckets {text!r}: {item!r} is not {what}")
        out.add(int(value))
    return series, tuple(sorted(out))


@functools.lru_cache(maxsize=256)
def _layout(low: int, high: int, sig_figs: int, bounds: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """``cut`` for one HDR layout and bounds: ``cut[i]`` = number of counts indexes whose
    lowest equivalent value is ≤ ``bounds[i]``.

    A value recorded exactly at a bound lies in an HDR bucket whose lowest value is
    ≤ the bound, so it is counted at that ``le``, as Prometheus means it.
    """
    h = HdrHistogram(low, high, sig_figs)
    sub, shift = bucket_origins(np.arange(h.counts_len, dtype=np.int64), h)
    lowest = sub << shift
    cut = np.searchsorted(lowest, np.asarray(bounds, dtype=np.int64), side="right")
    cut.setflags(write=False)
    return cut


def _decode(hdr: bytes) -> HdrHistogram:
    try:
        return HdrHistogram.decode(base64.b64encode(hdr))
    except (ValueError, TypeError, zlib.error, RuntimeError, OverflowError, *_HDR_ERRORS) as exc:
        raise HdrDecodeError(f"invalid HDR encoding: {type(exc).__name__}: {exc}") from exc


def cumulative_buckets(
    hdr: bytes,
    series: str = "",
    *,
    limits: tuple[int, ...] = (),
    override: tuple[int, ...] | None = None,
) -> BucketCounts:
    """Decode ``hdr`` (V2 compressed, raw bytes) into the fixed cumulative buckets of
    ``series`` (see :func:`bounds_for`; a series without a table gets the 1-2-5 steps)."""
    h = _decode(hdr)
    low, high, sig = (
        int(h.lowest_trackable_value),
        int(h.highest_trackable_value),
        int(h.significant_figures),
    )
    if low < 1 or high < 2 * low:
        raise HdrDecodeError(f"HDR range [{low}, {high}] is not valid")
    bounds = bounds_for(series, low, high, tuple(limits), override)
    cut = _layout(low, high, sig, bounds)
    counts = np.ctypeslib.as_array(h.counts).view(np.uint64)
    if counts.size < int(cut.max(initial=0)):
        raise HdrDecodeError("HDR counts array is shorter than its layout")
    cum = np.cumsum(counts, dtype=np.uint64)
    total = int(cum[-1]) if cum.size else 0
    picked = np.where(cut > 0, cum[np.maximum(cut, 1) - 1], 0)
    return BucketCounts(bounds, tuple(int(c) for c in picked.tolist()), total)
