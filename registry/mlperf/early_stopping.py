"""MLPerf LoadGen's early-stopping binomial test (``loadgen/early_stopping.cc``, ``results.cc``).

Given ``h`` queries under a latency bound and ``t`` over it, the chance of
seeing at most ``t`` overlatency queries among ``h + t`` when the true
overlatency rate is ``1 - p + d`` is the regularised incomplete beta
``I_{p-d}(h, t + 1)``. ``find_min_passing(t, p)`` is the least ``h`` that makes
it smaller than ``1 - confidence``: with that many good queries beside ``t``
bad ones, the ``p``-quantile is within the bound at that confidence.

From it follow (``p`` always a fraction in (0, 1)):

* :func:`min_queries`: ``find_min_passing(1, p) + 1``, the fewest queries for
  any estimate at all (p99: 662);
* :func:`discard_count`: LoadGen's SingleStream ``t``, the largest ``t >= 1``
  with ``n >= find_min_passing(t, p) + t``; the estimate is ``sorted[n - t]``,
  so ``t - 1`` values lie above it (upstream's log calls that "discarded");
* :func:`queries_needed`: how many more queries a Server run with ``t``
  overlatency queries needs before it can pass;
* :func:`early_stopping_indices`: the estimate's index for every grid
  percentile from 50 up to (not including) 100, as upstream's snapshots carry.

The incomplete beta is ``scipy.special.betainc``; results are cached per
``(t, p, confidence, tolerance)``. Pure functions: no I/O, no registry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from registry.core.percentiles import percent_to_fraction
from registry.delivery.snapshot import percentile_key

__all__ = [
    "EarlyStoppingSpec",
    "discard_count",
    "early_stopping_indices",
    "find_min_passing",
    "min_queries",
    "queries_needed",
    "warm_up",
]


@dataclass(frozen=True, slots=True)
class EarlyStoppingSpec:
    """LoadGen's test parameters: ``confidence`` in (0, 1), ``tolerance`` ``d`` >= 0."""

    confidence: float = 0.99
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        c, d = self.confidence, self.tolerance
        if not (isinstance(c, int | float) and 0.0 < c < 1.0):
            raise ValueError(f"early-stopping confidence must lie in (0, 1), got {c!r}")
        if not (isinstance(d, int | float) and 0.0 <= d < 1.0):
            raise ValueError(f"early-stopping tolerance must lie in [0, 1), got {d!r}")


_DEFAULT = EarlyStoppingSpec()


def _least(passes: Callable[[int], bool], guess: int) -> int:
    """Least ``k >= 1`` with ``passes(k)``, for ``passes`` False...False True...True.

    Gallops from ``guess`` (doubling steps) to bracket the switch, then bisects:
    a good guess costs a few evaluations whatever the size of the answer.
    """
    guess = max(1, guess)
    if passes(guess):
        hi, step = guess, 1
        lo = hi - step
        while lo >= 1 and passes(lo):
            hi, step = lo, step * 2
            lo = hi - step
        lo = max(lo, 0)  # 0 stands for "fails": k starts at 1
    else:
        lo, step = guess, 1
        hi = lo + step
        while not passes(hi):
            lo, step = hi, step * 2
            hi = lo + step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


@functools.lru_cache(maxsize=1 << 16)
def _find_min_passing(t: int, x: float, target: float) -> int:
    # imported here: scipy.special takes ~1 s to import, and most commands never need it
    from scipy.special import betainc

    def passes(h: int) -> bool:
        return bool(betainc(h, t + 1, x) < target)

    # h(t) grows like t * x / (1 - x); start there
    return _least(passes, int(t * x / (1.0 - x)))


def _fraction(p: float, spec: EarlyStoppingSpec) -> float:
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be a fraction in (0, 1), got {p!r}")
    x = p - spec.tolerance
    if not x > 0.0:
        raise ValueError(f"tolerance {spec.tolerance!r} leaves no room below p = {p!r}")
    return x


def find_min_passing(t: int, p: float, *, confidence: float = 0.99, tolerance: float = 0.0) -> int:
    """The least ``h >= 1`` with ``I_{p-d}(h, t + 1) < 1 - confidence`` (``p`` a fraction)."""
    if int(t) != t or t < 0:
        raise ValueError(f"t must be an integer >= 0, got {t!r}")
    spec = EarlyStoppingSpec(confidence, tolerance)
    return _find_min_passing(int(t), _fraction(p, spec), 1.0 - spec.confidence)


def _h(t: int, p: float, spec: EarlyStoppingSpec) -> int:
    return find_min_passing(t, p, confidence=spec.confidence, tolerance=spec.tolerance)


def min_queries(p: float, spec: EarlyStoppingSpec = _DEFAULT) -> int:
    """The fewest queries for which an estimate of the ``p`` fraction exists."""
    return _h(1, p, spec) + 1


def warm_up(spec: EarlyStoppingSpec = _DEFAULT) -> None:
    """Import scipy and fill the cache for the default grid now (run it off the event
    loop at start): otherwise the final snapshot pays the ~0.5-1.5 s import, between
    ``session.ended`` and the final files, while a launcher waits for them."""
    for p in (0.5, 0.75, 0.8, 0.9, 0.95, 0.97, 0.99, 0.999):  # the default grid's, >= 50
        min_queries(p, spec)


def discard_count(n: int, p: float, spec: EarlyStoppingSpec = _DEFAULT) -> int:
    """The largest ``t >= 1`` with ``n >= find_min_passing(t, p) + t`` (0: t = 1 does not fit)."""
    if n < min_queries(p, spec):
        return 0

    def too_many(t: int) -> bool:
        return _h(t, p, spec) + t > n

    # h(t) + t is about t / (1 - p): the answer is somewhat below n * (1 - p)
    return _least(too_many, int(n * (1.0 - float(p)))) - 1


def queries_needed(n: int, t: int, p: float, spec: EarlyStoppingSpec = _DEFAULT) -> int:
    """More queries a run of ``n`` with ``t`` overlatency ones needs to pass (0 = enough)."""
    return max(0, _h(t, p, spec) + t - n)


def early_stopping_indices(
    n: int, grid: Sequence[float], spec: EarlyStoppingSpec = _DEFAULT
) -> dict[str, int | None]:
    """For every grid percentile ``50 <= p < 100`` (percent), keyed ``str(float(p))``:
    the 0-based index ``n - t`` of its estimate among ``n`` sorted values, or
    ``None`` when ``n`` is below :func:`min_queries`."""
    out: dict[str, int | None] = {}
    for p in grid:
        if not 50.0 <= float(p) < 100.0:
            continue
        frac = percent_to_fraction(p)
        t = discard_count(n, frac, spec)
        out[percentile_key(p)] = n - t if t else None
    return out
