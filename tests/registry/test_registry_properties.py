"""Hypothesis properties of the registry's numbers (SPEC §3)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import DEFAULT_PERCENTILES, MetricsRegistry, SessionState
from registry.core.series import nearest_rank

LIVE = SessionState.LIVE
COMPLETE = SessionState.COMPLETE

in_range_ints = st.integers(min_value=1, max_value=10**11)
any_ints = st.integers(min_value=-(10**12), max_value=10**13)
grids = st.lists(
    st.floats(min_value=0, max_value=100, allow_nan=False), min_size=0, max_size=6, unique=True
).map(lambda ps: tuple(dict.fromkeys([50.0, *ps])))


def reference_percentile(values: list[int | float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(Fraction(str(p)) / 100 * len(ordered)))
    return float(ordered[rank - 1])


def one_series(values, *, dtype=int, percentiles=DEFAULT_PERCENTILES, sig_figs=3):
    reg = MetricsRegistry()
    reg.register_series(
        "s", hdr_low=1, hdr_high=10**11, sig_figs=sig_figs, percentiles=percentiles, dtype=dtype
    )
    reg.record_many("s", values)
    return reg


@given(st.lists(any_ints, min_size=1, max_size=300), grids)
def test_exact_terminal_percentiles_are_nearest_rank(values, grid) -> None:
    stat = one_series(values, percentiles=grid).build_snapshot(state=COMPLETE, n_pending_tasks=0)
    stat = stat.series["s"]
    for p in grid:
        assert stat.percentile(p) == reference_percentile(values, p)


@given(
    st.lists(in_range_ints, min_size=1, max_size=400), st.integers(min_value=1, max_value=5), grids
)
def test_live_percentiles_are_within_hdr_precision_of_exact(values, sig_figs, grid) -> None:
    reg = one_series(values, percentiles=grid, sig_figs=sig_figs)
    live = reg.build_snapshot(state=LIVE, n_pending_tasks=0).series["s"]
    exact = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0).series["s"]
    tolerance = 10.0**-sig_figs
    for p in grid:
        got, want = live.percentile(p), exact.percentile(p)
        assert abs(got - want) <= tolerance * want, (p, got, want)


@given(st.lists(any_ints, max_size=300))
def test_integer_rollups_are_exact(values) -> None:
    stat = one_series(values).build_snapshot(state=LIVE, n_pending_tasks=0).series["s"]
    assert stat.count == len(values)
    assert stat.total == sum(values)
    # a float on the wire (upstream's shape): the correctly rounded exact sum
    assert stat.sum_sq == float(sum(v * v for v in values))
    if values:
        assert (stat.min, stat.max) == (min(values), max(values))


@given(
    st.lists(
        st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=300,
    )
)
def test_float_rollups_match_exact_sums(values) -> None:
    stat = one_series(values, dtype=float).build_snapshot(state=LIVE, n_pending_tasks=0)
    stat = stat.series["s"]
    scale = sum(abs(v) for v in values) + 1.0
    assert math.isclose(stat.total, math.fsum(values), rel_tol=1e-12, abs_tol=1e-12 * scale)
    assert math.isclose(stat.sum_sq, math.fsum(v * v for v in values), rel_tol=1e-12, abs_tol=1e-9)
    assert (stat.min, stat.max) == (min(values), max(values))


operations = st.lists(
    st.one_of(
        st.tuples(st.just("record"), in_range_ints),
        st.tuples(st.just("many"), st.lists(in_range_ints, max_size=20)),
        st.tuples(st.just("snapshot"), st.sampled_from([LIVE, COMPLETE])),
    ),
    max_size=60,
)


@given(operations)
def test_any_interleaving_conserves_counts(ops) -> None:
    reg = MetricsRegistry()
    reg.register_series("s", hdr_low=1, hdr_high=10**11)
    recorded: list[int] = []
    for op, arg in ops:
        if op == "record":
            reg.record("s", arg)
            recorded.append(arg)
        elif op == "many":
            reg.record_many("s", arg)
            recorded.extend(arg)
        else:
            stat = reg.build_snapshot(state=arg, n_pending_tasks=0).series["s"]
            assert stat.count == len(recorded)
            assert stat.total == sum(recorded)
    final = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0).series["s"]
    assert final.count == len(recorded) and final.total == sum(recorded)


@settings(max_examples=60)
@given(
    st.lists(any_ints, min_size=1, max_size=500),
    st.sampled_from([LIVE, COMPLETE]),
    st.integers(min_value=1, max_value=40),
)
def test_display_histogram_counts_sum_to_count(values, state, n_buckets) -> None:
    reg = MetricsRegistry()
    reg.register_series("s", hdr_low=1, hdr_high=10**11, n_histogram_buckets=n_buckets)
    reg.record_many("s", values)
    stat = reg.build_snapshot(state=state, n_pending_tasks=0).series["s"]
    assert sum(n for _, n in stat.histogram) == len(values)
    assert len(stat.histogram) == n_buckets
    edges = [lo for (lo, _), _ in stat.histogram] + [stat.histogram[-1][0][1]]
    # upstream's rule: log-spaced over [max(min, 1), max(max, 10 * that)]
    lo = max(float(min(values)), 1.0)
    hi = max(float(max(values)), 10.0 * lo)
    assert math.isclose(edges[0], lo, rel_tol=1e-12)
    assert math.isclose(edges[-1], hi, rel_tol=1e-12)
    assert all(a < b for a, b in itertools.pairwise(edges))
    if state is COMPLETE:
        want = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
        assert [n for _, n in stat.histogram] == want.tolist()


def test_nearest_rank_definition() -> None:
    assert nearest_rank(0, 10) == 1
    assert nearest_rank(50, 10) == 5
    assert nearest_rank(50, 11) == 6
    assert nearest_rank(99.9, 1000) == 999
    assert nearest_rank(100, 7) == 7
    data = np.arange(1, 101)
    assert all(data[nearest_rank(p, 100) - 1] == p for p in range(1, 101))
