"""A recorded series: hot-path buffer, exact rollups, HDR histogram, raw values (SPEC §3).

The hot path is ``pending.append(value)`` on an ``array.array`` (``'q'`` or
``'d'``) that is never replaced, so the registry can hand out the bound
``append`` once and never look it up again. The array stores 8 bytes per
value with no Python object kept alive, and rejects a value of the wrong
kind at the call site (``TypeError``) instead of losing it later.

Everything else happens off the hot path: :meth:`SeriesSampler.take_pending`
copies the pending prefix (``pending[:n]``) and then removes it (``del
pending[:n]``), each one GIL-atomic step, so a value appended meanwhile stays
for the next fold; :meth:`SeriesSampler.fold` and :meth:`SeriesSampler.stat`
do the numpy work, possibly on another thread. The copy is never exposed as a buffer of ``pending``
itself, since an exported buffer would make a concurrent append fail.

Guarantees: every recorded value is folded exactly once; raw values are kept
at 8 bytes each (int64 or float64) in a few chunks; the raw store is sorted
in place at most once per terminal snapshot and remembered as sorted.
"""

from __future__ import annotations

import array
import functools
import logging
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.hdr import HdrFold
from registry.rollups import Rollup, rollup_of
from registry.snapshot import DEFAULT_PERCENTILES, SeriesStat, percentile_key

__all__ = ["SeriesConfig", "SeriesSampler", "display_edges", "nearest_rank"]

logger = logging.getLogger(__name__)

# Merge the raw chunks into one once there are this many: keeps per-chunk
# overhead negligible while each value is copied only rarely.
_MAX_RAW_CHUNKS = 64


def nearest_rank(p: float, n: int) -> int:
    """1-based nearest rank of percentile ``p`` among ``n`` values (rank 1 for p = 0).

    Computed in exact rational arithmetic on the decimal ``p`` as written:
    in floats ``99.9 / 100 * 1000`` is ``999.0000000000001`` and would round up.
    """
    if n <= 0:
        raise ValueError("nearest rank of an empty set")
    return min(n, max(1, math.ceil(_decimal_fraction(p) * n / 100)))


@functools.lru_cache(maxsize=256)
def _decimal_fraction(p: float) -> Fraction:
    return Fraction(repr(float(p)))


def display_edges(lo: float, hi: float, n_buckets: int) -> npt.NDArray[np.float64]:
    """``n_buckets + 1`` edges over ``[lo, hi]``: log-spaced when ``lo > 0``, else linear."""
    spacing = np.geomspace if lo > 0 else np.linspace
    edges = spacing(lo, hi, n_buckets + 1)
    edges[0], edges[-1] = lo, hi
    return edges


class SeriesConfig:
    """Validated settings of one series."""

    __slots__ = ("dtype", "hdr_high", "hdr_low", "n_histogram_buckets", "percentiles", "sig_figs")

    def __init__(
        self,
        *,
        hdr_low: int,
        hdr_high: int,
        sig_figs: int = 3,
        n_histogram_buckets: int = 30,
        percentiles: Sequence[float] = DEFAULT_PERCENTILES,
        dtype: type = int,
    ) -> None:
        if dtype not in (int, float):
            raise ValueError(f"dtype must be int or float, not {dtype!r}")
        if int(hdr_low) != hdr_low or hdr_low < 1:
            raise ValueError(f"hdr_low must be an integer >= 1, got {hdr_low!r}")
        if int(hdr_high) != hdr_high or hdr_high < 2 * hdr_low:
            raise ValueError(f"hdr_high must be an integer >= 2*hdr_low, got {hdr_high!r}")
        if not 1 <= sig_figs <= 5:
            raise ValueError(f"sig_figs must be in 1..5, got {sig_figs!r}")
        if n_histogram_buckets < 1:
            raise ValueError(f"n_histogram_buckets must be >= 1, got {n_histogram_buckets!r}")
        grid = tuple(float(p) for p in percentiles)
        if any(not 0.0 <= p <= 100.0 for p in grid):
            raise ValueError(f"percentiles must lie in [0, 100], got {grid!r}")
        if 50.0 not in grid:
            raise ValueError("the percentile grid must contain 50")
        if len(set(grid)) != len(grid):
            raise ValueError(f"the percentile grid has duplicates: {grid!r}")
        self.hdr_low = int(hdr_low)
        self.hdr_high = int(hdr_high)
        self.sig_figs = int(sig_figs)
        self.n_histogram_buckets = int(n_histogram_buckets)
        self.percentiles = grid
        self.dtype = dtype


class SeriesSampler:
    """One series' state. ``pending`` is the hot-path buffer; call ``stat`` to fold and read."""

    def __init__(self, name: str, config: SeriesConfig) -> None:
        self.name = name
        self.config = config
        self._np_dtype = np.int64 if config.dtype is int else np.float64
        self.pending = array.array("q" if config.dtype is int else "d")
        self.pending_arrays: list[npt.NDArray[Any]] = []
        self._rollup = Rollup()
        self._hdr = HdrFold(config.hdr_low, config.hdr_high, config.sig_figs)
        self._raw: list[npt.NDArray[Any]] = []
        self._raw_sorted = False
        self._warned_clamp = False
        self.dropped_non_finite = 0
        self._keys = tuple(percentile_key(p) for p in config.percentiles)

    # -- hot-path companions ---------------------------------------------------

    def add_many(self, values: Any) -> None:
        """Queue a whole batch (copied, so the caller may reuse its buffer).

        Raises ``TypeError`` when the values are not of the series' kind
        (anything but integers for an int series, non-numbers for a float one).
        """
        arr = np.array(values, copy=True).reshape(-1)
        kind = arr.dtype.kind
        if arr.size and (kind not in "iub" if self._np_dtype is np.int64 else kind not in "iubf"):
            raise TypeError(
                f"series {self.name!r} ({self.config.dtype.__name__}) cannot take values "
                f"of dtype {arr.dtype}"
            )
        self.pending_arrays.append(arr.astype(self._np_dtype, copy=False))

    # -- folding ---------------------------------------------------------------

    def take_pending(self) -> list[npt.NDArray[Any]]:
        """Detach everything queued so far, as arrays (cheap: a copy of the buffer)."""
        n = len(self.pending)
        batches: list[npt.NDArray[Any]] = []
        if n:
            batches.append(np.frombuffer(self.pending[:n], dtype=self._np_dtype))
            del self.pending[:n]
        k = len(self.pending_arrays)
        if k:
            batches.extend(self.pending_arrays[:k])
            del self.pending_arrays[:k]
        return batches

    def fold_pending(self) -> None:
        """Move everything queued so far into rollups, HDR and raw store."""
        self.fold(self.take_pending())

    def fold(self, batches: list[npt.NDArray[Any]]) -> None:
        """Fold detached batches into rollups, HDR and raw store."""
        for batch in batches:
            if self._np_dtype is np.float64:
                finite = np.isfinite(batch)
                if not finite.all():
                    self._drop_non_finite(int(batch.size - np.count_nonzero(finite)))
                    batch = batch[finite]
            if batch.size == 0:
                continue
            self._rollup.merge(rollup_of(batch))
            self._hdr.fold(batch)
            self._raw.append(batch)
            self._raw_sorted = False
        if len(self._raw) > _MAX_RAW_CHUNKS:
            self._raw = [np.concatenate(self._raw)]
        if self._hdr.clamped and not self._warned_clamp:
            logger.warning(
                "series %r: values outside the HDR range [%d, %d] were clamped into the "
                "histogram (rollups and exact percentiles are unaffected)",
                self.name,
                self.config.hdr_low,
                self.config.hdr_high,
            )
            self._warned_clamp = True

    def _drop_non_finite(self, n: int) -> None:
        # NaN/inf cannot be ranked or summed meaningfully: they are counted, not kept
        if not self.dropped_non_finite:
            logger.warning("series %r: dropping NaN/infinite values (counted)", self.name)
        self.dropped_non_finite += n

    def _sorted_raw(self) -> npt.NDArray[Any]:
        if len(self._raw) != 1:
            self._raw = [np.concatenate(self._raw)] if self._raw else [np.empty(0, self._np_dtype)]
            self._raw_sorted = False
        if not self._raw_sorted:
            self._raw[0].sort()
            self._raw_sorted = True
        return self._raw[0]

    # -- reading ---------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._rollup.count

    @property
    def hdr(self) -> HdrFold:
        return self._hdr

    def raw_values(self) -> npt.NDArray[Any]:
        """Every folded value (a sorted view once a terminal snapshot was taken)."""
        if self._raw_sorted or not self._raw:
            return self._sorted_raw()
        return np.concatenate(self._raw)

    def stat(self, *, exact: bool) -> SeriesStat:
        """Describe what has been folded so far (call :meth:`fold` first).

        ``exact``: percentiles and display histogram from the raw values
        (terminal snapshots); otherwise from the HDR (live snapshots).
        """
        r = self._rollup
        hdr_bytes = self._hdr.encode()
        if r.count == 0:
            zero: int | float = 0 if self._np_dtype is np.int64 else 0.0
            return SeriesStat(
                name=self.name,
                count=0,
                total=zero,
                min=zero,
                max=zero,
                sum_sq=zero,
                percentiles=dict.fromkeys(self._keys, 0.0),
                histogram=[],
                hdr=hdr_bytes,
            )
        n = r.count
        lo, hi = float(r.min), float(r.max)
        edges = display_edges(lo, hi, self.config.n_histogram_buckets) if hi > lo else None
        if exact:
            data = self._sorted_raw()
            ranks = [nearest_rank(p, n) for p in self.config.percentiles]
            values = data[np.asarray(ranks, dtype=np.int64) - 1].astype(np.float64).tolist()
            if edges is None:
                counts = [n]
            else:
                cuts = np.searchsorted(data, edges[1:-1], side="left")
                counts = np.diff(np.concatenate(([0], cuts, [n]))).tolist()
        else:
            values = [
                min(hi, max(lo, float(self._hdr.value_at_rank(nearest_rank(p, n)))))
                for p in self.config.percentiles
            ]
            if edges is None:
                counts = [n]
            else:
                reps, weights = self._hdr.nonzero_buckets()
                binned = np.histogram(np.clip(reps, lo, hi), bins=edges, weights=weights)[0]
                counts = binned.astype(np.int64).tolist()
        if edges is None:
            histogram = [((lo, hi), int(counts[0]))]
        else:
            e = edges.tolist()
            histogram = [((e[i], e[i + 1]), int(c)) for i, c in enumerate(counts)]
        return SeriesStat(
            name=self.name,
            count=n,
            total=r.total,
            min=r.min,
            max=r.max,
            sum_sq=r.sum_sq,
            percentiles=dict(zip(self._keys, values, strict=True)),
            histogram=histogram,
            hdr=hdr_bytes,
        )
