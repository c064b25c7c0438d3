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

A terminal ``stat`` reads the sorted raw values: percentiles at the index the
registry's method picks (:mod:`registry.percentiles`), upstream's display
histogram (:func:`display_edges`) and, for tail-latency series, the MLPerf
early-stopping map (:mod:`registry.mlperf.early_stopping`). This module never
decides those rules itself; it only applies them to the values it holds.

Guarantees: every recorded value is folded exactly once; raw values are kept
at 8 bytes each (int64 or float64) in a few chunks; the raw store is sorted
in place at most once per terminal snapshot and remembered as sorted.
"""

from __future__ import annotations

import array
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.hdr import HdrFold
from registry.mlperf.early_stopping import EarlyStoppingSpec, early_stopping_indices
from registry.percentiles import PercentileMethod, nearest_rank, rank_indices
from registry.rollups import Rollup, rollup_of
from registry.snapshot import DEFAULT_PERCENTILES, SeriesStat, percentile_key

__all__ = ["SeriesConfig", "SeriesSampler", "display_edges", "nearest_rank"]

logger = logging.getLogger(__name__)

# Merge the raw chunks into one once there are this many: keeps per-chunk
# overhead negligible while each value is copied only rarely.
_MAX_RAW_CHUNKS = 64
# Below this every int64 converts to float64 exactly.
_FLOAT_EXACT = 2**53


def display_edges(min_value: float, max_value: float, n_buckets: int) -> list[float]:
    """Upstream's ``n_buckets + 1`` display edges over the observed ``[min, max]``.

    ``lo = max(min, 1)``, ``hi = max(max, 10 * lo)``, edge ``i`` =
    ``exp(log(lo) + i * (log(hi) - log(lo)) / n_buckets)``, in that float order
    and with ``math`` (not numpy) so every edge equals upstream's bit for bit.
    The first edge may differ from ``lo`` in the last bit; values are clipped
    into ``[edges[0], edges[-1]]`` before counting, so none is lost.
    """
    lo = max(float(min_value), 1.0)
    hi = max(float(max_value), lo * 10.0)
    log_lo = math.log(lo)
    step = (math.log(hi) - log_lo) / n_buckets
    return [math.exp(log_lo + i * step) for i in range(n_buckets + 1)]


class SeriesConfig:
    """Validated settings of one series."""

    __slots__ = (
        "dtype",
        "hdr_high",
        "hdr_low",
        "n_histogram_buckets",
        "percentiles",
        "sig_figs",
        "tail_latency",
    )

    def __init__(
        self,
        *,
        hdr_low: int,
        hdr_high: int,
        sig_figs: int = 3,
        n_histogram_buckets: int = 30,
        percentiles: Sequence[float] = DEFAULT_PERCENTILES,
        dtype: type = int,
        tail_latency: bool = False,
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
        #: gets early-stopping estimates in terminal snapshots (SPEC §10)
        self.tail_latency = bool(tail_latency)


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

    def stat(
        self,
        *,
        exact: bool,
        method: PercentileMethod = PercentileMethod.NEAREST_RANK,
        early_stopping: EarlyStoppingSpec | None = None,
    ) -> SeriesStat:
        """Describe what has been folded so far (call :meth:`fold` first).

        ``exact``: percentiles by ``method``, display histogram and (for a
        tail-latency series, when ``early_stopping`` is given) the
        early-stopping map from the raw values (terminal snapshots);
        otherwise nearest rank and histogram from the HDR (live snapshots).
        """
        r = self._rollup
        hdr_bytes = self._hdr.encode()
        es_spec = early_stopping if exact and self.config.tail_latency else None
        if r.count == 0:
            # upstream's empty series: min/max the int 0 even for a float series
            zero: int | float = 0 if self._np_dtype is np.int64 else 0.0
            return SeriesStat(
                name=self.name,
                count=0,
                total=zero,
                min=0,
                max=0,
                sum_sq=zero,
                percentiles=dict.fromkeys(self._keys, 0.0),
                histogram=[],
                early_stopping_percentiles=(
                    None if es_spec is None else self._early_stopping_map(None, es_spec)
                ),
                hdr=hdr_bytes,
            )
        n = r.count
        lo, hi = float(r.min), float(r.max)
        edges = display_edges(lo, hi, self.config.n_histogram_buckets)
        es_map: dict[str, float | None] | None = None
        if exact:
            data = self._sorted_raw()
            idx = rank_indices(method, self.config.percentiles, n)
            values = data[idx].astype(np.float64).tolist()
            counts = _sorted_histogram(data, edges)
            if es_spec is not None:
                es_map = self._early_stopping_map(data, es_spec)
        else:
            values = [
                min(hi, max(lo, float(self._hdr.value_at_rank(nearest_rank(p, n)))))
                for p in self.config.percentiles
            ]
            reps, weights = self._hdr.nonzero_buckets()
            binned = np.histogram(np.clip(reps, edges[0], edges[-1]), bins=edges, weights=weights)
            counts = binned[0].astype(np.int64).tolist()
        histogram = [((edges[i], edges[i + 1]), int(c)) for i, c in enumerate(counts)]
        return SeriesStat(
            name=self.name,
            count=n,
            total=r.total,
            min=r.min,
            max=r.max,
            # a float, as upstream sends it: the correctly rounded value of the exact sum
            sum_sq=float(r.sum_sq),
            percentiles=dict(zip(self._keys, values, strict=True)),
            histogram=histogram,
            early_stopping_percentiles=es_map,
            hdr=hdr_bytes,
        )

    def _early_stopping_map(
        self, data: npt.NDArray[Any] | None, spec: EarlyStoppingSpec
    ) -> dict[str, float | None]:
        # an empty series (data None) still gets the map, all None: the feature is on
        n = 0 if data is None else int(data.size)
        indices = early_stopping_indices(n, self.config.percentiles, spec)
        return {
            key: float(data[i]) if data is not None and i is not None else None
            for key, i in indices.items()
        }


def _sorted_histogram(data: npt.NDArray[Any], edges: list[float]) -> list[int]:
    """``np.histogram(np.clip(data, edges[0], edges[-1]), edges)`` for sorted ``data``.

    The same counts (half-open buckets, the last one closed) by bisecting the
    sorted values at the interior edges instead of letting numpy sort again.
    For integers ``v < e`` is ``v < ceil(e)``, so the cuts are integer keys
    and the values never get converted to float (numpy converts them; the two
    agree below 2**53, and beyond it we compare in float as numpy does).
    """
    cuts = np.asarray(edges[1:-1], dtype=np.float64)
    if data.dtype.kind in "iu":
        if data.size and max(abs(int(data[0])), abs(int(data[-1]))) < _FLOAT_EXACT:
            cuts = np.ceil(cuts).astype(data.dtype)
        else:
            data = data.astype(np.float64)
    positions = np.searchsorted(data, cuts, side="left")
    return np.diff(np.concatenate(([0], positions, [data.size]))).tolist()
