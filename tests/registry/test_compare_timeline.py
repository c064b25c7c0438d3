"""The numbers behind the page's charts (issue 25): the time bins of a run and the
downsampled distributions, checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from registry.compare.distribution import cdf_points, log_histogram
from registry.compare.timeline import build_timeline

S = 1_000_000_000  # ns


def table(issued_s: list[float], done_s: list[float | None], **extra: list) -> pa.Table:
    n = len(issued_s)
    cols = {
        "issued_ns": pa.array([int(t * S) for t in issued_s], pa.int64()),
        "complete_ns": pa.array([None if t is None else int(t * S) for t in done_s], pa.int64()),
        "ttft_ns": pa.array(extra.get("ttft", [10_000_000] * n), pa.int64()),
        "latency_ns": pa.array(extra.get("latency", [100_000_000] * n), pa.int64()),
        "osl": pa.array(extra.get("osl", [10] * n), pa.int64()),
        "failed": pa.array(extra.get("failed", [False] * n), pa.bool_()),
    }
    return pa.table(cols)


def test_rates_in_flight_tokens_and_failures_per_bin() -> None:
    # 1,000 samples issued over 10 s (100/s), each done 0.5 s later; 1 in 10 failed
    issued = [i / 100 for i in range(1000)]
    done = [t + 0.5 for t in issued]
    failed = [i % 10 == 0 for i in range(1000)]
    tl = build_timeline(table(issued, done, failed=failed), origin_ns=0)
    assert tl.n_samples == 1000
    t = tl.t_s
    steady = (t >= 1) & (t + tl.bin_s <= 10)
    assert np.allclose(tl.issued_per_s[steady], 100, rtol=0.05)
    assert np.allclose(tl.completed_per_s[steady], 100, rtol=0.05)
    assert round(tl.failed_per_s.sum() * tl.bin_s) == 100  # every failure, once
    assert math.isclose(tl.failed_per_s[steady].mean(), 10, rel_tol=0.1)
    assert np.allclose(tl.tokens_per_s[steady], 1000, rtol=0.05)  # 10 tokens a completion
    # Little's law: 100/s x 0.5 s = 50 in flight in the steady part; none at the end
    assert np.allclose(tl.in_flight[steady], 50, atol=2)
    assert tl.in_flight[-1] == 0
    # every sample counted once
    assert round(tl.issued_per_s.sum() * tl.bin_s) == 1000
    assert round(tl.completed_per_s.sum() * tl.bin_s) == 1000


def test_never_completed_samples_stay_in_flight() -> None:
    tl = build_timeline(table([0.0, 0.1, 0.2], [0.5, None, None]), origin_ns=0)
    assert tl.in_flight[-1] == 2
    assert round(tl.completed_per_s.sum() * tl.bin_s) == 1


def test_rolling_percentiles_follow_a_step_in_latency() -> None:
    # latency 100 ms for the first 10 s, then 300 ms: the rolling p50 follows the step
    issued = [i / 100 for i in range(2000)]
    latency = [100_000_000 if t < 10 else 300_000_000 for t in issued]
    done = [t + lat / S for t, lat in zip(issued, latency, strict=True)]
    tl = build_timeline(table(issued, done, latency=latency), origin_ns=0)
    p50 = tl.rolling["sample_latency_ns"]["p50"]
    ends = tl.t_s + tl.bin_s
    assert np.all(p50[(ends > 3) & (ends < 9)] == 100_000_000)
    assert np.all(p50[ends > 10.3 + tl.rolling_s] == 300_000_000)
    assert tl.rolling_s >= tl.bin_s


def test_bins_stay_bounded_for_a_long_run() -> None:
    issued = list(np.linspace(0, 36_000, 200_000))  # ten hours
    tl = build_timeline(table(issued, [t + 1 for t in issued]), origin_ns=0)
    assert len(tl.t_s) <= 150


def test_histogram_counts_every_positive_value_and_the_rest_is_counted() -> None:
    values = np.sort(np.concatenate([[0.0, 0.0], np.random.default_rng(1).lognormal(3, 1, 9999)]))
    edges, counts, skipped = log_histogram(values)
    assert skipped == 2 and counts.sum() == 9999 and len(edges) == len(counts) + 1
    assert edges[0] == values[2] and edges[-1] == values[-1]
    np.testing.assert_array_equal(counts, np.histogram(values[2:], bins=edges)[0])


def test_cdf_points_are_exact_order_statistics_down_to_the_tail() -> None:
    values = np.sort(np.random.default_rng(2).lognormal(0, 1, 1_000_000))
    x, f = cdf_points(values)
    assert len(x) <= 400
    ranks = np.round(f * values.size).astype(int)
    np.testing.assert_array_equal(x, values[ranks - 1])
    assert f[-1] == 1.0 and x[-1] == values[-1]
    # the tail is there: a point at or beyond p99.9, and one beyond p99.99
    assert (f >= 0.999).sum() >= 10 and f[-2] > 0.9999
    assert math.isclose(float(np.interp(0.5, f, x)), float(np.median(values)), rel_tol=0.02)
