"""MLPerf early stopping (SPEC §10): LoadGen's reference values, brute force, upstream's log."""

from __future__ import annotations

import math
import re

import pytest

from registry import DEFAULT_PERCENTILES, EarlyStoppingSpec
from registry.core.percentiles import percent_to_fraction
from registry.mlperf import (
    discard_count,
    early_stopping_indices,
    find_min_passing,
    min_queries,
    queries_needed,
)
from tests.support.upstream_fixtures import SESSION_A_UPSTREAM, SESSION_A_UPSTREAM_NOTOK


def test_loadgen_reference_values_for_p99() -> None:
    # SPEC §10: total queries h(t) + t for t = 0, 1, 2, 10 overlatency queries
    totals = [find_min_passing(t, 0.99) + t for t in (0, 1, 2, 10)]
    assert totals == [459, 662, 838, 2010]
    assert min_queries(0.99) == 662
    # t = 0 has LoadGen's closed form ceil(log(1 - c) / log(p))
    assert find_min_passing(0, 0.99) == math.ceil(math.log(0.01) / math.log(0.99))


def _odds(h: int, t: int, p: float) -> float:
    """P(at most t of h + t queries are overlatency) at overlatency rate 1 - p: the binomial sum."""
    return math.fsum(math.comb(h + t, k) * (1 - p) ** k * p ** (h + t - k) for k in range(t + 1))


def _brute_min_passing(t: int, p: float, c: float = 0.99) -> int:
    h = 1
    while _odds(h, t, p) >= 1 - c:
        h += 1
    return h


@pytest.mark.parametrize("p", [0.5, 0.75, 0.8, 0.9])
def test_find_min_passing_equals_the_exact_binomial_search(p: float) -> None:
    for t in range(0, 6):
        assert find_min_passing(t, p) == _brute_min_passing(t, p), (p, t)


@pytest.mark.parametrize("p", [0.5, 0.75, 0.9])
def test_discard_count_and_queries_needed_by_linear_search(p: float) -> None:
    totals = [_brute_min_passing(0, p)]
    while totals[-1] <= 120:
        totals.append(_brute_min_passing(len(totals), p) + len(totals))
    for n in range(1, 120):
        fitting = [t for t in range(1, len(totals)) if totals[t] <= n]
        assert discard_count(n, p) == (max(fitting) if fitting else 0), (p, n)
        for t in range(0, 4):
            assert queries_needed(n, t, p, EarlyStoppingSpec()) == max(0, totals[t] - n)


def test_tolerance_and_confidence_move_the_bound_as_loadgen_defines_them() -> None:
    # tolerance d evaluates the beta at p - d; a lower confidence needs fewer queries
    assert find_min_passing(1, 0.99, tolerance=0.01) == find_min_passing(1, 0.98)
    assert find_min_passing(1, 0.99, confidence=0.9) < find_min_passing(1, 0.99)
    spec = EarlyStoppingSpec(confidence=0.95)
    assert min_queries(0.9, spec) == find_min_passing(1, 0.9, confidence=0.95) + 1


def test_indices_cover_the_grid_from_the_median_up_and_need_min_queries() -> None:
    assert early_stopping_indices(0, DEFAULT_PERCENTILES) == {
        "99.9": None,
        "99.0": None,
        "97.0": None,
        "95.0": None,
        "90.0": None,
        "80.0": None,
        "75.0": None,
        "50.0": None,
    }
    at_floor = early_stopping_indices(662, (50, 99, 99.9, 100, 25))
    assert list(at_floor) == ["50.0", "99.0", "99.9"]  # 100 and 25 are outside [50, 100)
    assert at_floor["99.0"] == 662 - 1 and at_floor["99.9"] is None
    assert early_stopping_indices(661, (99,)) == {"99.0": None}
    n = 100_000
    big = early_stopping_indices(n, DEFAULT_PERCENTILES)
    for key, index in big.items():
        p = percent_to_fraction(float(key))
        assert index == n - discard_count(n, p)
        # conservative: at or above the empirical (nearest-rank) position
        assert index is not None and index >= math.ceil(p * n) - 1


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="confidence"):
        EarlyStoppingSpec(confidence=1.0)
    with pytest.raises(ValueError, match="tolerance"):
        EarlyStoppingSpec(tolerance=-0.1)
    with pytest.raises(ValueError, match="fraction"):
        find_min_passing(1, 99.0)
    with pytest.raises(ValueError, match="t must be"):
        find_min_passing(-1, 0.99)
    with pytest.raises(ValueError, match="no room"):
        find_min_passing(1, 0.5, tolerance=0.6)
    with pytest.raises(AttributeError):
        EarlyStoppingSpec().confidence = 0.5  # type: ignore[misc]


_DETAIL = re.compile(r"(\w+) early-stopping detail \(confidence ([0-9.]+)\): (.*)$")
_ENTRY = re.compile(
    r"p([0-9.]+): estimate=(\S+) empirical=\S+ n=(\d+) min_queries=(\d+) discarded=(\d+)"
)


def _detail_lines(log_text: str) -> dict[str, list[tuple[float, bool, int, int, int]]]:
    out: dict[str, list[tuple[float, bool, int, int, int]]] = {}
    for line in log_text.splitlines():
        m = _DETAIL.search(line)
        if m is None:
            continue
        assert float(m.group(2)) == 0.99
        out[m.group(1)] = [
            (float(p), est != "None", int(n), int(mq), int(d))
            for p, est, n, mq, d in _ENTRY.findall(m.group(3))
        ]
    return out


@pytest.mark.parametrize("run", [SESSION_A_UPSTREAM, SESSION_A_UPSTREAM_NOTOK])
def test_upstream_logged_detail_is_reproduced_exactly(run) -> None:
    lines = _detail_lines((run / "aggregator.log").read_text())
    assert set(lines) == {"sample_latency_ns", "ttft_ns", "tpot_ns"}
    checked = 0
    for series, entries in lines.items():
        assert [p for p, *_ in entries] == [99.9, 99.0, 97.0, 95.0, 90.0, 80.0, 75.0, 50.0]
        for p, has_estimate, n, logged_min, logged_discarded in entries:
            frac = percent_to_fraction(p)
            assert min_queries(frac) == logged_min, (series, p)
            t = discard_count(n, frac)
            index = early_stopping_indices(n, (p,))[str(p)]
            assert (index is not None) == has_estimate, (series, p, n)
            # upstream logs how many values lie above the estimate sorted[n - t]: t - 1
            assert max(0, t - 1) == logged_discarded, (series, p, n)
            checked += 1
    assert checked == 24


def test_warm_up_imports_scipy_and_fills_the_cache_off_the_final_snapshot() -> None:
    """The aggregator warms the numerics at start so the final snapshot does not pay the
    scipy import after session.ended; in a fresh interpreter, as the aggregator starts."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from registry.mlperf import early_stopping as es\n"
        "assert 'scipy.special' not in sys.modules\n"
        "es.warm_up()\n"
        "assert 'scipy.special' in sys.modules\n"
        "assert es._find_min_passing.cache_info().currsize >= 8\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
