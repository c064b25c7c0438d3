"""The standard metric catalogue, declared once as data: the aggregator's counters and series.

Every counter (upstream's, in upstream's registration order, then ours; which
are settable) and every series (order, int/float type, HDR bounds, whether it
exists only when streaming, whether it is a tail-latency series) is written
here and nowhere else. :class:`~registry.aggregator.metrics.AggregatorMetrics`
registers from it, and so does a benchmark that records in its own process
(:func:`register_standard_metrics`), so a file written in-process reads like
one the aggregator wrote: :func:`registry.report.build_report` finds
``tracked_samples_completed`` and ``tracked_duration_ns``, the exporter turns
``ttft_ns`` into ``bench_ttft_seconds``, the early-stopping map exists for the
tail-latency series.

This module only declares and registers; it never records a value and never
imports the aggregator (the aggregator imports it).
"""

from __future__ import annotations

from registry.core.metrics_registry import MetricsRegistry
from registry.core.series import SeriesSettings

__all__ = [
    "COUNTERS",
    "DIAGNOSTIC_COUNTERS",
    "DURATION_COUNTERS",
    "FINISH_REASONS",
    "NS_SERIES_BOUNDS",
    "SETTABLE_COUNTERS",
    "STANDARD_COUNTERS",
    "STREAMING_SERIES",
    "TAIL_LATENCY_SERIES",
    "TOKEN_SERIES_BOUNDS",
    "register_standard_metrics",
    "series_names",
    "standard_series",
    "standard_series_settings",
]

#: The finish reasons counted by name; any other string counts as ``other``.
FINISH_REASONS: tuple[str, ...] = (
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "function_call",
    "other",
)

#: Upstream's counters, in upstream's registration order.
COUNTERS: tuple[str, ...] = (
    "total_samples_issued",
    "total_samples_completed",
    "total_samples_failed",
    "tracked_samples_issued",
    "tracked_samples_completed",
    "tracked_samples_failed",
    *(f"tracked_finish_reason_{r}" for r in FINISH_REASONS),
    "tracked_duration_ns",
    "legacy_loadgen_window_duration_ns",
    "total_duration_ns",
)
#: The settable counters: the run's durations in nanoseconds.
SETTABLE_COUNTERS: frozenset[str] = frozenset(
    {"tracked_duration_ns", "legacy_loadgen_window_duration_ns", "total_duration_ns"}
)
#: Ours, after upstream's (monotonic): output tokens and data-quality counts.
DIAGNOSTIC_COUNTERS: tuple[str, ...] = (
    "tracked_output_tokens",
    "events_malformed",
    "events_unmatched",
    "events_out_of_order",
    "samples_complete_before_chunk",
    "session_errors",
    "tokenization_errors",
)
#: Every standard counter, in registration order (upstream's, then ours); all are ints.
STANDARD_COUNTERS: tuple[str, ...] = (*COUNTERS, *DIAGNOSTIC_COUNTERS)
#: The settable counters under the name the in-process API gives them.
DURATION_COUNTERS: frozenset[str] = SETTABLE_COUNTERS

NS_SERIES_BOUNDS: dict[str, int] = {"hdr_low": 1, "hdr_high": 3_600_000_000_000, "sig_figs": 3}
TOKEN_SERIES_BOUNDS: dict[str, int] = {"hdr_low": 1, "hdr_high": 10_000_000, "sig_figs": 3}
#: Series that exist only in streaming mode.
STREAMING_SERIES: frozenset[str] = frozenset({"ttft_ns", "chunk_delta_ns", "tpot_ns"})
#: Series that get MLPerf early-stopping estimates in terminal snapshots.
TAIL_LATENCY_SERIES: frozenset[str] = frozenset({"sample_latency_ns", "ttft_ns", "tpot_ns"})

# (name, dtype, bounds) in upstream's registration order.
_SERIES: tuple[tuple[str, type, dict[str, int]], ...] = (
    ("sample_latency_ns", int, NS_SERIES_BOUNDS),
    ("isl", int, TOKEN_SERIES_BOUNDS),
    ("osl", int, TOKEN_SERIES_BOUNDS),
    ("ttft_ns", int, NS_SERIES_BOUNDS),
    ("chunk_delta_ns", int, NS_SERIES_BOUNDS),
    ("tpot_ns", float, NS_SERIES_BOUNDS),
)


def series_names(*, streaming: bool) -> tuple[str, ...]:
    """The standard series, in registration order (TTFT, chunk gaps and TPOT when streaming)."""
    return tuple(n for n, _, _ in _SERIES if streaming or n not in STREAMING_SERIES)


#: The in-process API's name for :func:`series_names`.
standard_series = series_names


def standard_series_settings(
    *, streaming: bool, sig_figs: int = 3, n_histogram_buckets: int = 30
) -> dict[str, SeriesSettings]:
    """Each standard series' keywords for ``register_series``, in registration order.

    ``sig_figs`` and ``n_histogram_buckets`` are the run's (the aggregator's
    ``--sig-figs`` and ``--n-histogram-buckets``); the rest is the catalogue's.
    """
    return {
        name: SeriesSettings(
            hdr_low=bounds["hdr_low"],
            hdr_high=bounds["hdr_high"],
            sig_figs=sig_figs,
            n_histogram_buckets=n_histogram_buckets,
            dtype=dtype,
            tail_latency=name in TAIL_LATENCY_SERIES,
        )
        for name, dtype, bounds in _SERIES
        if streaming or name not in STREAMING_SERIES
    }


def register_standard_metrics(
    registry: MetricsRegistry,
    *,
    streaming: bool,
    sig_figs: int = 3,
    n_histogram_buckets: int = 30,
) -> None:
    """Register the standard counters and series on ``registry``, as the aggregator does.

    ``ValueError`` (naming it) when one of the names is already registered.
    """
    for name in COUNTERS:
        registry.register_counter(name, settable=name in SETTABLE_COUNTERS)
    for name in DIAGNOSTIC_COUNTERS:
        registry.register_counter(name)
    settings = standard_series_settings(
        streaming=streaming, sig_figs=sig_figs, n_histogram_buckets=n_histogram_buckets
    )
    for name, keywords in settings.items():
        registry.register_series(name, **keywords)
