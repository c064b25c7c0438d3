"""The three percentile methods against their definitions (SPEC §3), alone and in the registry."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import MetricsRegistry, PercentileMethod, SessionState
from registry.core.percentiles import nearest_rank, percent_to_fraction, rank_index, rank_indices

COMPLETE = SessionState.COMPLETE

counts = st.integers(min_value=1, max_value=5_000)
percents = st.floats(min_value=0, max_value=100, allow_nan=False)
# decimal percentiles as people write them (99.9, 97, 12.5, ...), where float
# rounding is most likely to bite
written = st.integers(min_value=0, max_value=1000).map(lambda k: k / 10)
grids = st.lists(percents, max_size=6, unique=True).map(
    lambda ps: tuple(dict.fromkeys([50.0, *ps]))
)


@given(counts, st.one_of(percents, written))
def test_nearest_rank_is_the_exact_ceiling(n: int, p: float) -> None:
    exact = Fraction(repr(p)) * n / 100
    want = max(1, math.ceil(exact))
    assert rank_index(PercentileMethod.NEAREST_RANK, p, n) == want - 1
    assert nearest_rank(p, n) == want


@given(counts, st.one_of(percents, written))
def test_numpy_lower_picks_what_numpy_picks(n: int, p: float) -> None:
    # distinct values equal to their index: numpy's pick names the index
    data = np.arange(n, dtype=np.int64)
    want = int(np.percentile(data, p, method="lower"))
    assert rank_index("numpy-lower", p, n) == want


@given(counts, st.lists(st.one_of(percents, written), min_size=1, max_size=12))
def test_numpy_lower_over_a_whole_grid_matches_one_numpy_call(n: int, grid: list[float]) -> None:
    data = np.arange(n, dtype=np.int64)
    want = np.percentile(data, grid, method="lower").astype(np.int64)
    assert rank_indices(PercentileMethod.NUMPY_LOWER, grid, n).tolist() == want.tolist()


@given(counts, st.one_of(percents, written))
def test_loadgen_is_the_floor_of_n_times_p_in_double(n: int, p: float) -> None:
    got = rank_index("loadgen", p, n)
    exact = math.floor(Fraction(repr(p)) * n / 100)
    assert 0 <= got <= n - 1
    if p < 100:
        # double arithmetic can land one below the exact floor, never elsewhere,
        # and only when n * p / 100 is within rounding of an integer
        assert got in (exact, exact - 1)
        if got != exact:
            assert abs(float(Fraction(repr(p)) * n / 100) - exact) < 1e-9 * n
    else:
        assert got == n - 1  # capped


def test_loadgen_reproduces_double_rounding_and_its_literals() -> None:
    # size_t(100 * 0.29) is 28 in C, as 100 * 0.29 == 28.999999999999996
    assert rank_index("loadgen", 29, 100) == 28
    # LoadGen holds 0.999 (the nearest double to the decimal), not 99.9 / 100
    assert percent_to_fraction(99.9) == 0.999 != 99.9 / 100
    assert rank_index("loadgen", 99.9, 1000) == 999
    assert rank_index("loadgen", 90, 10) == 9
    assert rank_index("loadgen", 50, 1) == 0
    assert rank_index("loadgen", 100, 7) == 6


def test_the_methods_differ_where_their_definitions_do() -> None:
    # n = 10, p = 50: nearest rank 5 (index 4); numpy lower floor(4.5) = 4; loadgen 5
    assert [rank_index(m, 50, 10) for m in PercentileMethod] == [4, 4, 5]
    # n = 1000, p = 99.9: nearest rank 999 (index 998); numpy floor(998.001) = 998; loadgen 999
    assert [rank_index(m, 99.9, 1000) for m in PercentileMethod] == [998, 998, 999]
    # p = 0 is the minimum for every method
    assert [rank_index(m, 0, 10) for m in PercentileMethod] == [0, 0, 0]


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="nearest-rank, numpy-lower, loadgen"):
        rank_index("median-of-medians", 50, 10)
    with pytest.raises(ValueError, match="empty"):
        rank_index("loadgen", 50, 0)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        rank_index("nearest-rank", 100.5, 10)
    with pytest.raises(ValueError, match="nearest-rank, numpy-lower, loadgen"):
        MetricsRegistry(percentile_method="lower")


@settings(max_examples=60)
@given(
    st.lists(st.integers(min_value=-(10**12), max_value=10**13), min_size=1, max_size=400),
    grids,
    st.sampled_from(list(PercentileMethod)),
)
def test_terminal_snapshots_select_by_the_registrys_method(values, grid, method) -> None:
    reg = MetricsRegistry(percentile_method=method)
    reg.register_series("s", hdr_low=1, hdr_high=10**11, percentiles=grid)
    reg.record_many("s", values)
    for state in (COMPLETE, SessionState.INTERRUPTED):
        stat = reg.build_snapshot(state=state, n_pending_tasks=0).series["s"]
        ordered = sorted(values)
        for p in grid:
            assert stat.percentile(p) == float(ordered[rank_index(method, p, len(values))])
        if method is PercentileMethod.NUMPY_LOWER:
            want = np.percentile(np.array(values), grid, method="lower").astype(float)
            assert [stat.percentile(p) for p in grid] == want.tolist()


def test_live_snapshots_stay_nearest_rank_on_the_hdr_whatever_the_method() -> None:
    values = list(range(1, 1001))
    live = {}
    for method in PercentileMethod:
        reg = MetricsRegistry(percentile_method=method)
        reg.register_series("s", hdr_low=1, hdr_high=10**6, sig_figs=5)
        reg.record_many("s", values)
        live[method] = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).series["s"]
        assert reg.percentile_method is method
    assert len({tuple(s.percentiles.values()) for s in live.values()}) == 1
    # 5 significant figures hold these integers exactly: nearest rank 500 is 500
    assert live[PercentileMethod.LOADGEN].percentile(50) == 500.0
