"""Two runs compared: per series and statistic, the difference and its 95 % interval.

:func:`compare_runs` takes a base run and another run (:class:`RunData`) and
yields a :class:`Comparison`: one :class:`Row` per series and statistic (mean,
p50, p90, p99) plus the throughput rows (QPS, tokens/s), each with the two
values, the difference ``run - base``, its interval and the method that made
it (:mod:`registry.compare.intervals`, :mod:`registry.compare.throughput`).
A series that one run has no per-sample values for is listed in
``Comparison.skipped`` with the reason (never dropped unsaid). Runs that
cannot be compared at all (different series, no samples) raise
:class:`IncomparableRuns` with one line. Pure data: nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from registry.compare.intervals import (
    LEVEL,
    MEAN_METHOD,
    QUANTILE_METHOD,
    mean_diff,
    needed_ranks,
    quantile_diff,
)
from registry.compare.run_data import RunData, SeriesUnavailable
from registry.compare.throughput import THROUGHPUT_METHOD, batch_rates

__all__ = [
    "SERIES_ALIASES",
    "STATS",
    "Comparison",
    "IncomparableRuns",
    "Row",
    "compare_runs",
    "series_unit",
]

#: The statistics compared for every series, with the quantile each one is (None: the mean).
STATS: dict[str, float | None] = {"mean": None, "p50": 0.50, "p90": 0.90, "p99": 0.99}
#: Short names (for ``--fail-if`` and the table) -> series names.
SERIES_ALIASES: dict[str, str] = {
    "ttft": "ttft_ns",
    "tpot": "tpot_ns",
    "latency": "sample_latency_ns",
    "chunk_gap": "chunk_delta_ns",
    "isl": "isl",
    "osl": "osl",
}
THROUGHPUT = ("qps", "tps")
#: Series whose values are not independent samples: the intervals assume they are.
_CLUSTERED = {
    "chunk_delta_ns": "the gaps of one response are not independent: its intervals are too narrow",
}


class IncomparableRuns(ValueError):
    """The runs cannot be compared (the message is one line)."""


def series_unit(name: str) -> str:
    """``ns`` for time series, ``tokens`` for lengths, ``1/s`` for rates."""
    if name.endswith("_ns"):
        return "ns"
    if name in THROUGHPUT:
        return "1/s"
    return "tokens"


@dataclass(frozen=True)
class Row:
    """One statistic of one series in both runs (values in the series' base unit)."""

    series: str
    stat: str
    unit: str
    base: float
    run: float
    diff: float
    low: float
    high: float
    method: str
    n_base: int
    n_run: int
    source: str

    @property
    def detectable(self) -> bool:
        """The interval lies entirely on one side of 0."""
        ok = math.isfinite(self.low) and math.isfinite(self.high)
        return ok and (self.low > 0 or self.high < 0)

    @property
    def verdict(self) -> str:
        if not self.detectable:
            return "no detectable difference"
        return "higher" if self.low > 0 else "lower"

    def relative(self, value: float) -> float:
        """``value`` as a fraction of the base statistic (NaN when the base is 0)."""
        return value / self.base if self.base else math.nan

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "series": self.series,
            "stat": self.stat,
            "unit": self.unit,
            "base": num(self.base),
            "run": num(self.run),
            "diff": num(self.diff),
            "ci_low": num(self.low),
            "ci_high": num(self.high),
            "rel_diff": num(self.relative(self.diff)),
            "rel_ci_low": num(self.relative(self.low)),
            "rel_ci_high": num(self.relative(self.high)),
            "verdict": self.verdict,
            "method": self.method,
            "n_base": self.n_base,
            "n_run": self.n_run,
            "source": self.source,
        }


@dataclass
class Comparison:
    """``run`` against ``base``: the rows, the series left out and why, the level."""

    base: str
    run: str
    level: float
    rows: list[Row] = field(default_factory=list)
    #: series name -> why it is not compared
    skipped: dict[str, str] = field(default_factory=dict)

    def row(self, series: str, stat: str) -> Row | None:
        for r in self.rows:
            if r.series == series and r.stat == stat:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "run": self.run,
            "confidence_level": self.level,
            "methods": {
                "mean": MEAN_METHOD,
                "quantiles": QUANTILE_METHOD,
                "throughput": THROUGHPUT_METHOD,
            },
            "rows": [r.to_dict() for r in self.rows],
            "skipped": dict(self.skipped),
        }


def check_comparable(base: RunData, run: RunData) -> None:
    """:class:`IncomparableRuns` unless both runs have the same series and samples."""
    a, b = set(base.series_names), set(run.series_names)
    if a != b:
        only_a = ", ".join(sorted(a - b)) or "-"
        only_b = ", ".join(sorted(b - a)) or "-"
        raise IncomparableRuns(
            f"{run.path} has different series from {base.path} "
            f"(only in the base: {only_a}; only in the run: {only_b})"
        )
    for r in (base, run):
        if not any(r.series_count(s) for s in r.series_names):
            raise IncomparableRuns(f"{r.path}: no samples to compare")


def _common_source(base: RunData, run: RunData, name: str) -> str:
    """The source both runs can give ``name`` from (raw store preferred)."""
    a, b = base.source_of(name), run.source_of(name)
    if a == b:
        return a
    return "samples.parquet"  # one has only the Parquet column: compare like with like


def _series_rows(base: RunData, run: RunData, name: str, level: float) -> list[Row]:
    source = _common_source(base, run, name)
    a = _partitioned(base.values(name, source, ordered=False), level)
    b = _partitioned(run.values(name, source, ordered=False), level)
    if a.size == 0 or b.size == 0:
        raise SeriesUnavailable(f"{name}: no values in {'the base' if a.size == 0 else 'the run'}")
    rows = []
    for stat, q in STATS.items():
        if q is None:
            d, lo, hi = mean_diff(a, b, level)
            va, vb, method = float(a.mean()), float(b.mean()), MEAN_METHOD
        else:
            d, lo, hi = quantile_diff(a, b, q, level)
            va, vb = _nr(a, q), _nr(b, q)
            method = QUANTILE_METHOD
        if name in _CLUSTERED:
            method = f"{method}; {_CLUSTERED[name]}"
        rows.append(
            Row(
                name,
                stat,
                series_unit(name),
                va,
                vb,
                float(d),
                float(lo),
                float(hi),
                method,
                int(a.size),
                int(b.size),
                source,
            )
        )
    return rows


def _partitioned(values: np.ndarray, level: float) -> np.ndarray:
    """``values`` partitioned at every rank the quantile intervals read (O(n), no sort)."""
    ranks = sorted(
        {r for q in STATS.values() if q is not None for r in needed_ranks(values.size, q, level)}
    )
    return np.partition(values, ranks) if ranks else values


def _nr(sorted_values: np.ndarray, q: float) -> float:
    n = sorted_values.size
    return float(sorted_values[min(max(math.ceil(q * n), 1), n) - 1])


def _throughput_rows(base: RunData, run: RunData, level: float) -> list[Row]:
    cols = ["issued_ns", "complete_ns", "osl"]
    rates = []
    for r in (base, run):
        t = r.samples(cols)
        arrays = [t.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in cols]
        rates.append(batch_rates(*arrays))
    rows = []
    for i, (name, key) in enumerate((("qps", "qps"), ("tps", "tps"))):
        ra, rb = rates[0][i], rates[1][i]
        d, lo, hi = mean_diff(ra, rb, level)
        # The values are the Reports' own; the batch means only size the interval.
        va = base.report.get(key)
        vb = run.report.get(key)
        va = float(va) if isinstance(va, int | float) else float(ra.mean())
        vb = float(vb) if isinstance(vb, int | float) else float(rb.mean())
        shift = (vb - va) - float(d)
        rows.append(
            Row(
                name,
                "rate",
                "1/s",
                va,
                vb,
                vb - va,
                float(lo) + shift,
                float(hi) + shift,
                THROUGHPUT_METHOD,
                int(ra.size),
                int(rb.size),
                "samples.parquet",
            )
        )
    return rows


def _ordered(names: Sequence[str]) -> list[str]:
    """The series in the order people read them (TTFT first), then any others."""
    first = list(SERIES_ALIASES.values())
    return [n for n in first if n in names] + [n for n in names if n not in first]


def compare_runs(base: RunData, run: RunData, level: float = LEVEL) -> Comparison:
    """Every series and statistic of ``run`` against ``base`` (:class:`IncomparableRuns`)."""
    check_comparable(base, run)
    out = Comparison(base=base.label, run=run.label, level=level)
    for name in _ordered(base.series_names):
        try:
            out.rows += _series_rows(base, run, name, level)
        except SeriesUnavailable as exc:
            out.skipped[name] = str(exc)
    if base.has_samples and run.has_samples:
        out.rows += _throughput_rows(base, run, level)
    else:
        missing = base.path if not base.has_samples else run.path
        for name in THROUGHPUT:
            out.skipped[name] = f"{missing}: no samples.parquet for the batch rates"
    if not out.rows:
        raise IncomparableRuns(
            f"nothing to compare between {base.path} and {run.path}: "
            + "; ".join(out.skipped.values())
        )
    return out


def compare_many(base: RunData, runs: Sequence[RunData], level: float = LEVEL) -> list[Comparison]:
    """:func:`compare_runs` of each run against ``base``."""
    return [compare_runs(base, r, level) for r in runs]
