"""The one HDR bucket arithmetic (registry.core.hdr.bucket_origins) against hdrh's own,
index by index, and every reader built on it (issue 26: it was written twice)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from exporter.prometheus.buckets import cumulative_buckets
from registry.core.hdr import HdrFold, bucket_origins, count_over

LAYOUTS = [(1, 3_600_000_000_000, 3), (1, 10_000_000, 3), (1_000, 10**9, 2), (1, 2**62, 5)]


@pytest.mark.parametrize(("low", "high", "sig"), LAYOUTS)
def test_origins_are_hdrhs_lowest_and_highest_value_of_every_index(
    low: int, high: int, sig: int
) -> None:
    h = HdrHistogram(low, high, sig)
    idx = np.arange(h.counts_len, dtype=np.int64)
    sub, shift = bucket_origins(idx, h)
    step = max(1, h.counts_len // 2000)  # hdrh is one Python call per index
    for i in range(0, h.counts_len, step):
        lowest = h.get_value_from_index(i)
        assert int(sub[i]) << int(shift[i]) == lowest, i
        assert (int(sub[i]) << int(shift[i])) + (1 << int(shift[i])) - 1 == (
            h.get_highest_equivalent_value(lowest)
        ), i


def test_the_readers_agree_with_values_recorded_one_by_one() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.integers(1, 5_000, 3000), rng.integers(1, 10**9, 3000)])
    fold = HdrFold(1, 3_600_000_000_000, 3)
    fold.fold(values)
    ref = HdrHistogram(1, 3_600_000_000_000, 3)
    for v in values.tolist():
        ref.record_value(v)
    # nonzero_buckets: the middle of each bucket that hdrh counted something in
    reps, counts = fold.nonzero_buckets()
    assert int(counts.sum()) == values.size
    for rep, i in zip(reps.tolist(), np.flatnonzero(fold.counts).tolist(), strict=True):
        lo = ref.get_value_from_index(i)
        assert rep == lo + (ref.get_highest_equivalent_value(lo) - lo) / 2
    # bucket_range: each value lies in the range of the index it was folded at
    for v, i in zip(values[:500].tolist(), fold.index_of(values[:500]).tolist(), strict=True):
        lo, hi = fold.bucket_range(i)
        assert lo <= v <= hi and lo == ref.get_value_from_index(i)
    # count_over and the exporter's fixed buckets: bounds on the true counts
    encoded = base64.b64decode(ref.encode())
    for limit in (100, 4_999, 123_456, 10**8):
        total, surely, maybe = count_over(encoded, limit)
        true_over = int(np.count_nonzero(values > limit))
        assert total == values.size and surely <= true_over <= surely + maybe
    buckets = cumulative_buckets(encoded, "ttft_ns")
    assert buckets.total == values.size
    for bound, cum in zip(buckets.bounds, buckets.cumulative, strict=True):
        # le=bound counts every value ≤ bound, plus at most the rest of its HDR bucket
        assert int(np.count_nonzero(values <= bound)) <= cum
        assert cum <= int(np.count_nonzero(values <= ref.get_highest_equivalent_value(bound)))
