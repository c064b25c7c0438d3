"""A run over time, from ``samples.parquet``: the numbers the report's time-series charts draw.

:func:`build_timeline` bins the run (at most :data:`MAX_BINS` bins of a round
width) and gives per bin: issued, completed and failed samples per second,
samples in flight at the bin's end, output tokens per second, and TTFT and
latency p50/p99 over a rolling window of completions (wide enough to hold
about :data:`ROLLING_SAMPLES` of them, so a p99 means something). Times are
seconds from the session start (the run block's timeline) or the first issue.
Bounded output whatever the run's length; pure numbers, no drawing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_BINS", "ROLLING_SAMPLES", "Timeline", "build_timeline"]

MAX_BINS = 150
#: Fewest completions a bin holds on average (fewer make the rates mostly noise).
MIN_PER_BIN = 10
ROLLING_SAMPLES = 200
_ROUND_WIDTHS_S = (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800)

Array = npt.NDArray[np.float64]


@dataclass
class Timeline:
    """Per-bin series of one run (each array has one value per bin; NaN: no data)."""

    bin_s: float
    #: bin start times, seconds from the origin
    t_s: Array
    issued_per_s: Array
    completed_per_s: Array
    failed_per_s: Array
    in_flight: Array
    tokens_per_s: Array
    #: name ("ttft_ns", "sample_latency_ns") -> {"p50": array, "p99": array} in ns
    rolling: dict[str, dict[str, Array]] = field(default_factory=dict)
    rolling_s: float = 0.0
    #: tracking windows, seconds from the origin
    windows: list[tuple[float, float]] = field(default_factory=list)
    n_samples: int = 0


def _round_width(span_s: float, max_bins: int) -> float:
    want = span_s / max_bins
    for w in _ROUND_WIDTHS_S:
        if w >= want:
            return float(w)
    return float(math.ceil(want / 3600) * 3600)


def _col(table: Any, name: str) -> Array:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def _rolling_quantiles(
    t_sorted: Array, values: Array, edges: Array, window_bins: int
) -> dict[str, Array]:
    """p50 and p99 (nearest rank) of the values completing in each bin's trailing window;
    ``t_sorted``: completion times in order, ``values`` in the same order."""
    ok = np.isfinite(values) & np.isfinite(t_sorted)
    t, v = t_sorted[ok], values[ok]
    bounds = np.searchsorted(t, edges, side="left")
    n_bins = edges.size - 1
    out = {"p50": np.full(n_bins, np.nan), "p99": np.full(n_bins, np.nan)}
    for i in range(n_bins):
        lo = bounds[max(i - window_bins + 1, 0)]
        hi = bounds[i + 1]
        n = hi - lo
        if n == 0:
            continue
        ranks = [min(max(math.ceil(q * n), 1), n) - 1 for q in (0.5, 0.99)]
        part = np.partition(v[lo:hi], ranks)
        out["p50"][i], out["p99"][i] = part[ranks[0]], part[ranks[1]]
    return out


def build_timeline(
    table: Any,
    *,
    origin_ns: float | None = None,
    windows_ns: list[tuple[float, float]] | None = None,
    max_bins: int = MAX_BINS,
) -> Timeline:
    """The timeline of a ``samples.parquet`` table (columns issued_ns, complete_ns, ttft_ns,
    latency_ns, osl, failed)."""
    issued = _col(table, "issued_ns")
    done = _col(table, "complete_ns")
    failed = np.asarray(table.column("failed").to_numpy(zero_copy_only=False), dtype=bool)
    osl = np.nan_to_num(_col(table, "osl"), nan=0.0)
    if issued.size == 0:
        empty = np.empty(0)
        return Timeline(1.0, empty, empty, empty, empty, empty, empty)
    origin = float(origin_ns) if origin_ns is not None else float(issued.min())
    ti = (issued - origin) / 1e9
    td = (done - origin) / 1e9
    end = float(np.nanmax(np.concatenate([ti, td])))
    start = min(0.0, float(ti.min()))
    n_done = max(int(np.isfinite(td).sum()), 1)
    bins = max(min(max_bins, n_done // MIN_PER_BIN), 1)
    width = _round_width(max(end - start, 1e-3), bins)
    n_bins = max(math.ceil((end - start) / width + 1e-9), 1)
    edges: Array = (start + width * np.arange(n_bins + 1)).astype(np.float64)
    finished = np.isfinite(td)

    def per_bin(t: Array, weights: Array | None = None) -> Array:
        # equal bins: an index computation, not np.histogram's sort of every value
        i = np.floor((t - start) / width).astype(np.int64)
        np.clip(i, 0, n_bins - 1, out=i)
        return np.bincount(i, weights=weights, minlength=n_bins)[:n_bins].astype(np.float64)

    issued_n = per_bin(ti)
    done_n = per_bin(td[finished])
    when_failed = np.where(finished, td, ti)[failed]
    in_flight = np.cumsum(issued_n) - np.cumsum(done_n)
    tokens = per_bin(td[finished], osl[finished])
    per_bin_done = max(float(finished.sum()) / n_bins, 1e-9)
    window_bins = int(min(max(math.ceil(ROLLING_SAMPLES / per_bin_done), 1), max(n_bins // 4, 1)))
    order = np.argsort(td, kind="stable")  # once for both series (NaN, never done, last)
    td_sorted = td[order]
    rolling = {
        name: _rolling_quantiles(td_sorted, _col(table, col)[order], edges, window_bins)
        for name, col in (("ttft_ns", "ttft_ns"), ("sample_latency_ns", "latency_ns"))
    }
    windows = [((a - origin) / 1e9, (b - origin) / 1e9) for a, b in windows_ns or []]
    return Timeline(
        bin_s=width,
        t_s=edges[:-1],
        issued_per_s=issued_n / width,
        completed_per_s=done_n / width,
        failed_per_s=per_bin(when_failed) / width,
        in_flight=in_flight,
        tokens_per_s=tokens / width,
        rolling=rolling,
        rolling_s=window_bins * width,
        windows=windows,
        n_samples=int(issued.size),
    )
