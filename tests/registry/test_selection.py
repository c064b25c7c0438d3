"""The exact selection (registry/core/selection.py) gives exactly the sorted-array answers:
every percentile method, the early-stopping indices and the display-histogram counts, on
random data, ties, a single value, negative and float series and values clamped out of the
HDR range; with its pass really taken (no small-data shortcut)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.core.hdr import HdrFold
from registry.core.percentiles import PercentileMethod, rank_indices
from registry.core.selection import select_exact
from registry.core.series import display_edges
from registry.delivery.snapshot import DEFAULT_PERCENTILES
from registry.mlperf.early_stopping import early_stopping_indices

METHODS = list(PercentileMethod)
GRID = (*DEFAULT_PERCENTILES, 0.0, 100.0, 33.3)

ints = st.integers(min_value=-(10**13), max_value=10**13)
floats = st.floats(min_value=-1e13, max_value=1e13, allow_nan=False, allow_infinity=False)


@st.composite
def series(draw: st.DrawFn) -> tuple[npt.NDArray[np.generic], int, int, int]:
    """(values, hdr_low, hdr_high, sig_figs): ints or floats, often tied, often clamped."""
    kind = draw(st.sampled_from(["int", "float", "ties", "single", "lognormal"]))
    n = draw(st.integers(min_value=1, max_value=3000))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "int":
        values: npt.NDArray[np.generic] = np.array(draw(st.lists(ints, min_size=1, max_size=200)))
    elif kind == "float":
        values = np.array(draw(st.lists(floats, min_size=1, max_size=200)), dtype=np.float64)
    elif kind == "ties":
        values = rng.integers(-3, 40, n)
    elif kind == "single":
        values = np.full(n, draw(st.one_of(ints, floats)))
    else:
        values = rng.lognormal(draw(st.floats(0, 20)), draw(st.floats(0.01, 2)), n)
        if draw(st.booleans()):
            values = values.astype(np.int64)
    low = draw(st.sampled_from([1, 10, 1000]))
    high = draw(st.sampled_from([2 * low, 10**6, 3_600_000_000_000]))
    return values, low, high, draw(st.integers(min_value=1, max_value=5))


def _reference(
    values: npt.NDArray[np.generic], ranks: list[int], edges: list[float]
) -> tuple[list[float], list[int]]:
    ordered = np.sort(values)
    counts = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
    return ordered[ranks].tolist(), counts.tolist()


@settings(max_examples=300, deadline=None)
@given(series(), st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=7))
def test_selection_equals_the_sorted_array_for_every_method(
    data: tuple[npt.NDArray[np.generic], int, int, int], n_buckets: int, n_pieces: int
) -> None:
    values, low, high, sig = data
    hdr = HdrFold(low, high, sig)
    hdr.fold(values)
    n = values.size
    ranks: list[int] = []
    for m in METHODS:
        ranks += rank_indices(m, GRID, n).tolist()
    ranks += [i for i in early_stopping_indices(n, GRID).values() if i is not None]
    edges = display_edges(float(values.min()), float(values.max()), n_buckets)
    pieces = np.array_split(values, n_pieces)
    got = select_exact(
        lambda: pieces,
        hdr,
        count=n,
        vmin=values.min(),
        vmax=values.max(),
        dtype=values.dtype,
        ranks=ranks,
        cuts=edges[1:-1],
        small=0,
    )
    want_values, want_counts = _reference(values, ranks, edges)
    assert got.values.tolist() == want_values
    below = [0, *got.below, n]
    assert [below[i + 1] - below[i] for i in range(n_buckets)] == want_counts
    assert got.method == "select"  # the pass answered, not the sorting fallback


def test_selection_keeps_only_a_small_share_of_a_large_series() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(17.0, 1.0, 1_000_000).astype(np.int64)
    hdr = HdrFold(1, 3_600_000_000_000, 3)
    hdr.fold(values)
    ranks = rank_indices(PercentileMethod.NEAREST_RANK, DEFAULT_PERCENTILES, values.size).tolist()
    edges = display_edges(float(values.min()), float(values.max()), 30)
    kept: list[int] = []

    def chunks():  # type: ignore[no-untyped-def]
        yield values

    import registry.core.selection as selection

    original = selection._collect

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        out, seen = original(*args, **kwargs)
        kept.append(sum(a.size for a in out))
        return out, seen

    selection._collect = spy
    try:
        got = select_exact(
            chunks,
            hdr,
            count=values.size,
            vmin=values.min(),
            vmax=values.max(),
            dtype=values.dtype,
            ranks=ranks,
            cuts=edges[1:-1],
        )
    finally:
        selection._collect = original
    assert got.values.tolist() == np.sort(values)[ranks].tolist()
    # 12 percentiles and 29 edges: a few dozen 0.1 %-wide buckets, well under 10 % of the values
    assert 0 < kept[0] < values.size // 10


def test_token_series_need_no_pass_at_all() -> None:
    """Integer buckets one value wide (token counts below 2048) answer from the HDR alone."""
    values = np.random.default_rng(1).integers(1, 1500, 100_000)
    hdr = HdrFold(1, 10_000_000, 3)
    hdr.fold(values)
    calls = []

    def chunks():  # type: ignore[no-untyped-def]
        calls.append(1)
        yield values

    ranks = rank_indices(PercentileMethod.LOADGEN, DEFAULT_PERCENTILES, values.size).tolist()
    edges = display_edges(float(values.min()), float(values.max()), 30)
    got = select_exact(
        chunks,
        hdr,
        count=values.size,
        vmin=values.min(),
        vmax=values.max(),
        dtype=values.dtype,
        ranks=ranks,
        cuts=edges[1:-1],
    )
    want_values, want_counts = _reference(values, ranks, edges)
    assert got.values.tolist() == want_values
    below = [0, *got.below, values.size]
    assert [below[i + 1] - below[i] for i in range(30)] == want_counts
    assert calls == []
