"""The standard metric catalogue: the aggregator's counters and series, for any registry.

A benchmark that records in its own process wants the names the rest of
bench-metrics understands: :func:`registry.report.build_report` reads
``tracked_samples_completed`` and ``tracked_duration_ns``, the exporter turns
``ttft_ns`` into ``bench_ttft_seconds``, the early-stopping map exists for the
tail-latency series. :func:`register_standard_metrics` registers exactly what
:class:`~registry.aggregator.metrics.AggregatorMetrics` registers (names,
order, int/float types, settable flags, HDR bounds, tail-latency flags), so a
file written in-process reads like one the aggregator wrote.

The aggregator stays the one place that declares the catalogue: this module
lets it register into a scratch registry and copies what it finds, rather than
restating names and bounds that could drift. It never records a value.
"""

from __future__ import annotations

from registry.aggregator.metrics import (
    COUNTERS,
    DIAGNOSTIC_COUNTERS,
    FINISH_REASONS,
    SETTABLE_COUNTERS,
    TAIL_LATENCY_SERIES,
    AggregatorMetrics,
    series_names,
)
from registry.metrics_registry import MetricsRegistry

__all__ = [
    "DURATION_COUNTERS",
    "FINISH_REASONS",
    "STANDARD_COUNTERS",
    "TAIL_LATENCY_SERIES",
    "register_standard_metrics",
    "standard_series",
]

#: Every standard counter, in registration order (upstream's, then ours).
STANDARD_COUNTERS: tuple[str, ...] = (*COUNTERS, *DIAGNOSTIC_COUNTERS)
#: The settable counters: the run's durations in nanoseconds.
DURATION_COUNTERS: frozenset[str] = SETTABLE_COUNTERS


def standard_series(*, streaming: bool) -> tuple[str, ...]:
    """The standard series, in registration order (TTFT, chunk gaps and TPOT when streaming)."""
    return series_names(streaming=streaming)


def register_standard_metrics(
    registry: MetricsRegistry,
    *,
    streaming: bool,
    sig_figs: int = 3,
    n_histogram_buckets: int = 30,
) -> None:
    """Register the aggregator's counters and series on ``registry``, as it would.

    ``ValueError`` (naming it) when one of the names is already registered.
    """
    template = MetricsRegistry(early_stopping=None)
    AggregatorMetrics(
        template, streaming=streaming, sig_figs=sig_figs, n_histogram_buckets=n_histogram_buckets
    )
    for name in template.counter_names:
        info = template.counter_info(name)
        registry.register_counter(name, info.dtype, settable=info.settable)
    for name in template.series_names:
        config = template.series_config(name)
        registry.register_series(
            name,
            hdr_low=config.hdr_low,
            hdr_high=config.hdr_high,
            sig_figs=config.sig_figs,
            n_histogram_buckets=config.n_histogram_buckets,
            percentiles=config.percentiles,
            dtype=config.dtype,
            tail_latency=config.tail_latency,
        )
