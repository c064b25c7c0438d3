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

A terminal ``stat`` reads the raw values at ranks, by selection: percentiles at
the index the registry's method picks (:mod:`registry.core.percentiles`), upstream's display
histogram (:func:`display_edges`) and, for tail-latency series, the MLPerf
early-stopping map (:mod:`registry.mlperf.early_stopping`). This module never
decides those rules itself; it only applies them to the values it holds.

Guarantees: every recorded value is folded exactly once; raw values are kept
at 8 bytes each (int64 or float64) in a :class:`~registry.store.SeriesValues`:
memory blocks, and with a raw store the values beyond its memory bound on
disk. Terminal statistics never sort them: :mod:`registry.core.selection` answers
every rank and histogram edge in one pass over memory and store.
"""

from __future__ import annotations

import array
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

import numpy as np
import numpy.typing as npt

from registry.core.hdr import HdrFold
from registry.core.percentiles import PercentileMethod, nearest_rank, rank_indices
from registry.core.rollups import Rollup, rollup_of
from registry.core.selection import CountMismatch, select_exact
from registry.delivery.snapshot import DEFAULT_PERCENTILES, SeriesStat, percentile_key
from registry.mlperf.early_stopping import EarlyStoppingSpec, early_stopping_indices
from registry.store.raw_store import SeriesValues

__all__ = [
    "EXACT",
    "HDR_ONLY",
    "LIVE",
    "SeriesConfig",
    "SeriesSampler",
    "SeriesSettings",
    "check_series_keywords",
    "describe_series",
    "display_edges",
    "nearest_rank",
]

logger = logging.getLogger(__name__)


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


class _SeriesBounds(TypedDict):
    hdr_low: int
    hdr_high: int


class SeriesSettings(_SeriesBounds, total=False):
    """The keywords that describe a series: the one list of them.

    ``MetricsRegistry.register_series``, ``MetricsSession.register_series`` and
    :class:`SeriesConfig` all take exactly these. ``hdr_low`` and ``hdr_high``
    are required; the defaults of the others (applied by :class:`SeriesConfig`):
    ``sig_figs`` 3, ``n_histogram_buckets`` 30, ``percentiles``
    ``DEFAULT_PERCENTILES``, ``dtype`` ``int``, ``tail_latency`` False.
    """

    sig_figs: int
    n_histogram_buckets: int
    percentiles: Sequence[float]
    dtype: type
    tail_latency: bool


_SETTINGS = SeriesSettings.__required_keys__ | SeriesSettings.__optional_keys__


def check_series_keywords(where: str, settings: Mapping[str, object]) -> None:
    """``TypeError``, worded as Python words it for a signature, unless ``settings``
    are series keywords with both bounds (``where`` names the function called)."""
    for key in settings:
        if key not in _SETTINGS:
            raise TypeError(f"{where}() got an unexpected keyword argument {key!r}")
    for key in ("hdr_low", "hdr_high"):
        if key not in settings:
            raise TypeError(f"{where}() missing required keyword-only argument: {key!r}")


class SeriesConfig:
    """Validated settings of one series (the keywords of :class:`SeriesSettings`)."""

    __slots__ = (
        "dtype",
        "hdr_high",
        "hdr_low",
        "n_histogram_buckets",
        "percentiles",
        "sig_figs",
        "tail_latency",
    )

    def __init__(self, **settings: Unpack[SeriesSettings]) -> None:
        check_series_keywords("SeriesConfig", settings)
        hdr_low, hdr_high = settings["hdr_low"], settings["hdr_high"]
        sig_figs = settings.get("sig_figs", 3)
        n_histogram_buckets = settings.get("n_histogram_buckets", 30)
        percentiles = settings.get("percentiles", DEFAULT_PERCENTILES)
        dtype = settings.get("dtype", int)
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
        self.tail_latency = bool(settings.get("tail_latency", False))

    def describe(self) -> dict[str, Any]:
        """The settings as plain JSON values (the final file's run block, the store manifest)."""
        return {
            "dtype": self.dtype.__name__,
            "hdr_low": self.hdr_low,
            "hdr_high": self.hdr_high,
            "sig_figs": self.sig_figs,
            "n_histogram_buckets": self.n_histogram_buckets,
            "percentiles": list(self.percentiles),
            "tail_latency": self.tail_latency,
        }


class SeriesSampler:
    """One series' state. ``pending`` is the hot-path buffer; call ``stat`` to fold and read."""

    def __init__(self, name: str, config: SeriesConfig, values: SeriesValues | None = None) -> None:
        self.name = name
        self.config = config
        self._np_dtype = np.int64 if config.dtype is int else np.float64
        self.pending = array.array("q" if config.dtype is int else "d")
        self.pending_arrays: list[npt.NDArray[Any]] = []
        self._rollup = Rollup()
        self._hdr = HdrFold(config.hdr_low, config.hdr_high, config.sig_figs)
        #: every folded value (memory, and the raw store's file when there is one)
        self.values = values if values is not None else SeriesValues(self._np_dtype)
        self._warned_clamp = False
        self.dropped_non_finite = 0
        #: why the last terminal statistics are not exact (raw values unreadable), else None
        self.inexact: str | None = None

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
        if len(batches) > 1:
            # Folding costs a pass over the whole HDR counts array per batch, and the
            # aggregator queues an array per message: fold them as one.
            batches = [np.concatenate(batches)]
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
            self.values.append(batch)
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

    # -- reading ---------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._rollup.count

    @property
    def hdr(self) -> HdrFold:
        return self._hdr

    @property
    def rollup(self) -> Rollup:
        return self._rollup

    def raw_values(self) -> npt.NDArray[Any]:
        """Every folded value in one array, in no particular order.

        Loads the whole series (store included) into memory: for tests and
        small series; the terminal statistics never need it.
        """
        return self.values.concatenated()

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
        try:
            return describe_series(
                self.name,
                self.config,
                self._rollup,
                self._hdr,
                mode=EXACT if exact else LIVE,
                chunks=self.values.chunks,
                method=method,
                early_stopping=early_stopping,
            )
        except CountMismatch as exc:
            # Some raw values cannot be read back (a store file damaged under the run):
            # the final files still come, located in the HDR (its precision) and saying
            # so (MetricsRegistry.inexact_series), never a traceback instead of them.
            self.inexact = f"raw values unreadable ({exc}): HDR precision"
            logger.error("series %s: %s", self.name, self.inexact)
            return describe_series(
                self.name,
                self.config,
                self._rollup,
                self._hdr,
                mode=HDR_ONLY,
                method=method,
                early_stopping=early_stopping,
            )


#: How :func:`describe_series` reads a series: HDR nearest rank (live snapshots),
#: exact from every raw value (terminal ones), or the terminal statistics located in
#: the HDR alone (a merge missing some raw values: approximate).
LIVE, EXACT, HDR_ONLY = "live", "exact", "hdr"


def describe_series(
    name: str,
    config: SeriesConfig,
    rollup: Rollup,
    hdr: HdrFold,
    *,
    mode: str,
    chunks: Callable[[], Iterable[npt.NDArray[Any]]] | None = None,
    method: PercentileMethod = PercentileMethod.NEAREST_RANK,
    early_stopping: EarlyStoppingSpec | None = None,
) -> SeriesStat:
    """The :class:`SeriesStat` of a series from its rollups, HDR and (``EXACT``) raw values.

    ``chunks()`` yields every raw value (any order); ``hdr`` must count exactly
    those. ``EXACT`` and ``HDR_ONLY`` give tail-latency series their
    early-stopping map (when ``early_stopping`` is set) and pick percentiles by
    ``method``; ``LIVE`` is nearest rank on the HDR, no map.
    """
    keys = tuple(percentile_key(p) for p in config.percentiles)
    np_dtype = np.int64 if config.dtype is int else np.float64
    r = rollup
    hdr_bytes = hdr.encode()
    terminal = mode != LIVE
    es_spec = early_stopping if terminal and config.tail_latency else None
    if r.count == 0:
        # upstream's empty series: min/max the int 0 even for a float series
        zero: int | float = 0 if np_dtype is np.int64 else 0.0
        return SeriesStat(
            name=name,
            count=0,
            total=zero,
            min=0,
            max=0,
            sum_sq=zero,
            percentiles=dict.fromkeys(keys, 0.0),
            histogram=[],
            early_stopping_percentiles=(
                None
                if es_spec is None
                else dict.fromkeys(early_stopping_indices(0, config.percentiles, es_spec))
            ),
            hdr=hdr_bytes,
        )
    n = r.count
    lo, hi = float(r.min), float(r.max)
    edges = display_edges(lo, hi, config.n_histogram_buckets)
    es_map: dict[str, float | None] | None = None
    ranks = (
        rank_indices(method, config.percentiles, n).tolist()
        if terminal
        else [nearest_rank(p, n) - 1 for p in config.percentiles]
    )
    es_idx = early_stopping_indices(n, config.percentiles, es_spec) if es_spec is not None else {}
    es_ranks = [i for i in es_idx.values() if i is not None]
    if mode == EXACT:
        assert chunks is not None, "exact statistics need the raw values"
        sel = select_exact(
            chunks,
            hdr,
            count=n,
            vmin=r.min,
            vmax=r.max,
            dtype=np_dtype,
            ranks=ranks + es_ranks,
            cuts=edges[1:-1],
        )
        picked = [float(v) for v in sel.values.tolist()]
        # counts per bucket from "how many below" each interior edge (np.histogram's
        # half-open buckets, the last one closed; values outside go to the end buckets)
        below = [0, *sel.below, n]
        counts = [below[i + 1] - below[i] for i in range(len(below) - 1)]
    else:
        # the HDR bucket's highest equivalent value, clamped to the exact [min, max]
        picked = [min(hi, max(lo, float(hdr.value_at_rank(k + 1)))) for k in ranks + es_ranks]
        reps, weights = hdr.nonzero_buckets()
        binned = np.histogram(np.clip(reps, edges[0], edges[-1]), bins=edges, weights=weights)
        counts = binned[0].astype(np.int64).tolist()
    values = picked[: len(ranks)]
    if es_spec is not None:
        at = iter(picked[len(ranks) :])
        es_map = {k: (next(at) if i is not None else None) for k, i in es_idx.items()}
    histogram = [((edges[i], edges[i + 1]), int(c)) for i, c in enumerate(counts)]
    return SeriesStat(
        name=name,
        count=n,
        total=r.total,
        min=r.min,
        max=r.max,
        # a float, as upstream sends it: the correctly rounded value of the exact sum
        sum_sq=float(r.sum_sq),
        percentiles=dict(zip(keys, values, strict=True)),
        histogram=histogram,
        early_stopping_percentiles=es_map,
        hdr=hdr_bytes,
    )
