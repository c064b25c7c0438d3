"""The intervals of ``bench-metrics compare`` cover what they claim (issue 25).

Synthetic runs with a known difference, hundreds of trials at once (vectorised
over the first axis): the 95 % intervals must cover the true difference of
p50 and p99 (and of the mean) in 93-97 % of the trials, and two halves of one
run must show no detectable difference in most trials. Seeds are fixed, so a
run of this file always sees the same trials.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from registry.compare.intervals import mean_diff, nearest_rank, needed_ranks, quantile_diff

TRIALS = 1500  # the coverage estimate's own noise: ±0.6 % (1 SE)
N = 4000  # per run: ~40 samples beyond p99, enough for its order statistics
SIGMA = 0.5  # lognormal shape: a right-skewed latency-like distribution
SLOWER = 1.08  # the run is 8 % slower than the base, at every quantile


@pytest.fixture(scope="module")
def runs() -> tuple[np.ndarray, np.ndarray]:
    """TRIALS pairs of runs (base, 8 % slower run), sorted along each trial."""
    rng = np.random.default_rng(25)
    base = np.sort(rng.lognormal(0.0, SIGMA, (TRIALS, N)), axis=1)
    run = np.sort(rng.lognormal(0.0, SIGMA, (TRIALS, N)) * SLOWER, axis=1)
    return base, run


@pytest.mark.parametrize("q", [0.50, 0.99])
def test_quantile_intervals_cover_the_true_difference(
    q: float, runs: tuple[np.ndarray, np.ndarray]
) -> None:
    base, run = runs
    truth = stats.lognorm.ppf(q, SIGMA) * (SLOWER - 1)
    diff, low, high = quantile_diff(base, run, q)
    assert diff.shape == (TRIALS,)
    coverage = float(np.mean((low <= truth) & (truth <= high)))
    print(f"p{q * 100:g}: coverage {coverage:.3f} over {TRIALS} trials")
    assert 0.93 <= coverage <= 0.97, f"p{q * 100:g}: coverage {coverage:.3f}"
    # and not trivially wide: the 8 % difference is found in a fair share of the trials
    found = float(np.mean(low > 0))
    print(f"p{q * 100:g}: an 8 % slower run found in {found:.1%} of the trials")
    assert found > (0.9 if q == 0.5 else 0.3)


def test_mean_intervals_cover_the_true_difference(runs: tuple[np.ndarray, np.ndarray]) -> None:
    base, run = runs
    truth = float(np.exp(SIGMA**2 / 2)) * (SLOWER - 1)
    _, low, high = mean_diff(base, run)
    coverage = float(np.mean((low <= truth) & (truth <= high)))
    print(f"mean: coverage {coverage:.3f} over {TRIALS} trials")
    assert 0.93 <= coverage <= 0.97, f"mean: coverage {coverage:.3f}"


@pytest.mark.parametrize("q", [0.50, 0.99])
def test_two_halves_of_one_run_show_no_detectable_difference(q: float) -> None:
    rng = np.random.default_rng(27)
    one_run = rng.lognormal(0.0, SIGMA, (TRIALS // 4, 2 * N))
    first = np.sort(one_run[:, :N], axis=1)
    second = np.sort(one_run[:, N:], axis=1)
    _, low, high = quantile_diff(first, second, q)
    spans_zero = float(np.mean((low <= 0) & (high >= 0)))
    assert spans_zero >= 0.90, f"p{q * 100:g}: no detectable difference in {spans_zero:.3f}"
    _, low, high = mean_diff(first, second)
    assert float(np.mean((low <= 0) & (high >= 0))) >= 0.90


def test_nearest_rank_is_the_reports_percentile() -> None:
    values = np.arange(1, 101, dtype=np.float64)  # 1..100
    assert nearest_rank(values, 0.99) == 99.0
    assert nearest_rank(values, 0.50) == 50.0
    assert nearest_rank(values[:3], 0.5) == 2.0


def test_too_few_samples_give_no_interval_rather_than_a_false_one() -> None:
    diff, low, high = quantile_diff(np.array([1.0]), np.array([2.0]), 0.5)
    assert float(diff) == 1.0 and np.isnan(low) and np.isnan(high)
    diff, low, high = mean_diff(np.array([1.0]), np.array([2.0, 3.0]))
    assert np.isnan(low) and np.isnan(high)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 4000])
def test_values_partitioned_at_the_needed_ranks_give_the_sorted_answer(n: int) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.lognormal(0, 1, n), rng.lognormal(0, 1, n) * 1.1
    for q in (0.5, 0.9, 0.99):
        ranks = needed_ranks(n, q)
        got = quantile_diff(np.partition(a, ranks), np.partition(b, ranks), q)
        want = quantile_diff(np.sort(a), np.sort(b), q)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
