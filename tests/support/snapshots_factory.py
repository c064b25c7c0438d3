"""Realistic snapshots for the view tests, built with the real MetricsRegistry.

The counters and series are those the aggregator produces (SPEC §6), filled
with known values so that a test can say exactly what a view must show.
"""

from __future__ import annotations

from registry.aggregator import AggregatorMetrics
from registry.core.metrics_registry import MetricsRegistry
from registry.delivery.snapshot import MetricsSnapshot, SessionState


def aggregator_like_registry() -> MetricsRegistry:
    """A registry with exactly the aggregator's counters and series (streaming mode)."""
    reg = MetricsRegistry()
    AggregatorMetrics(reg, streaming=True)
    return reg


def fill(
    reg: MetricsRegistry,
    *,
    completed: int,
    failed: int = 0,
    in_flight: int = 0,
    elapsed_s: float = 10.0,
) -> None:
    """Record ``completed`` successful samples with TTFT 1..n ms, latency 10x that.

    As the aggregator counts (SPEC §6), the ``failed`` samples completed too.
    """
    issued = completed + failed + in_flight
    for prefix in ("total", "tracked"):
        reg.increment(f"{prefix}_samples_issued", issued)
        reg.increment(f"{prefix}_samples_completed", completed + failed)
        reg.increment(f"{prefix}_samples_failed", failed)
    reg.increment("tracked_finish_reason_stop", completed - completed // 4)
    reg.increment("tracked_finish_reason_length", completed // 4)
    reg.increment("tracked_output_tokens", 64 * completed)
    reg.set_counter("tracked_duration_ns", int(elapsed_s * 1e9))
    reg.set_counter("total_duration_ns", int(elapsed_s * 1e9))
    for i in range(1, completed + 1):
        reg.record("ttft_ns", i * 1_000_000)
        reg.record("sample_latency_ns", i * 10_000_000)
        reg.record("chunk_delta_ns", 4_000_000)
        reg.record("tpot_ns", 2_500_000.0)
        reg.record("isl", 512)
        reg.record("osl", 64)


def snapshot(
    state: SessionState = SessionState.LIVE,
    *,
    completed: int = 1000,
    failed: int = 10,
    in_flight: int = 5,
    pending: int = 0,
    elapsed_s: float = 10.0,
) -> MetricsSnapshot:
    reg = aggregator_like_registry()
    fill(reg, completed=completed, failed=failed, in_flight=in_flight, elapsed_s=elapsed_s)
    return reg.build_snapshot(state=state, n_pending_tasks=pending)
