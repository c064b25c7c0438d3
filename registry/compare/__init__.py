"""Honest A/B comparison of finished runs, and the data ``report --html`` draws (SPEC §7, §11).

- :mod:`~registry.compare.run_data`: one run's Report and exact per-sample values;
- :mod:`~registry.compare.intervals`: the 95 % intervals of differences (Welch for
  means, distribution-free order statistics for quantiles);
- :mod:`~registry.compare.throughput`: batch rates for the throughput intervals;
- :mod:`~registry.compare.compare`: two runs compared, row by row;
- :mod:`~registry.compare.gate`: ``--fail-if`` gates;
- :mod:`~registry.compare.timeline`: a run over time, binned for charts.

Pure data: nothing here prints, renders or writes a file.
"""

from registry.compare.compare import (
    SERIES_ALIASES,
    STATS,
    Comparison,
    IncomparableRuns,
    Row,
    compare_runs,
)
from registry.compare.gate import Gate, GateError, parse_gate
from registry.compare.run_data import RunData, RunDataError, SeriesUnavailable, load_run_data

__all__ = [
    "SERIES_ALIASES",
    "STATS",
    "Comparison",
    "Gate",
    "GateError",
    "IncomparableRuns",
    "Row",
    "RunData",
    "RunDataError",
    "SeriesUnavailable",
    "compare_runs",
    "load_run_data",
    "parse_gate",
]
