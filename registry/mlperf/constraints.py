"""Exact per-sample constraint accounting and LoadGen's Server decision (SPEC §10).

:class:`ConstraintTracker` is told once per tracked sample, when every value a
constraint looks at is known (:meth:`ConstraintTracker.observe`). It counts
exactly, from the values themselves and never from an HDR histogram: per
constraint the samples judged ``n`` and those over the limit ``t``; overall
the good samples (succeeded, and within every limit they have a value for)
and their output tokens.

:func:`judge` turns ``(n, t)`` of one constraint into a :class:`Judgement`,
the way MLPerf LoadGen's Server scenario decides (``loadgen/results.cc``,
``EarlyStopping`` and ``PerfConstraintsMet``, mlcommons/inference commit
``05a9cec3596d4018ed22b934d9b8c04b7369086c``):

* *enough queries*: ``n >= h(t) + t`` with ``h = find_min_passing`` at
  LoadGen's fixed confidence 0.99 and tolerance 0; the queries still needed
  are ``max(0, h(t) + t - n)``;
* *percentile within the limit*: LoadGen's ``sorted[n * p]`` (the ``loadgen``
  percentile method) is at most the limit. Since a value is over the limit
  exactly when it is greater than it, that holds exactly when at most
  ``n - 1 - index`` values are over, ``index`` being that method's index: the
  counts decide it, no value needs to be kept.

States (docs/verdicts.md defines them for users):

* ``pending``: live; no sample judged yet, or the percentile is within the
  limit but the run has not had enough queries for its ``t`` yet;
* ``on_track``: live; both conditions hold, the run would pass if it ended now;
* ``failing``: live; the percentile is over the limit now;
* ``pass`` / ``fail``: final; both conditions hold / at least one does not
  (no sample at all is a fail).

Pure counting and arithmetic: no registry, no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from registry.core.percentiles import percent_to_fraction
from registry.mlperf.early_stopping import EarlyStoppingSpec, find_min_passing
from registry.mlperf.slo import Constraint

__all__ = [
    "CONSTRAINT_STATES",
    "FINAL_STATES",
    "LIVE_STATES",
    "LOADGEN_SERVER_TEST",
    "STATES",
    "ConstraintTracker",
    "Judgement",
    "combine_states",
    "decide",
    "judge",
    "min_queries_for",
]

#: Every state, in the order of their numeric codes on the snapshot stream (0..5).
#: ``invalid`` is a run's final state only (never a constraint's): every latency
#: constraint passes but LoadGen's min duration or min queries is not met
#: (:mod:`registry.mlperf.validity`).
STATES: tuple[str, ...] = ("pending", "on_track", "failing", "pass", "fail", "invalid")
#: The states one constraint can be in (``invalid`` is a run's only).
CONSTRAINT_STATES: tuple[str, ...] = STATES[:5]
LIVE_STATES: frozenset[str] = frozenset({"pending", "on_track", "failing"})
FINAL_STATES: frozenset[str] = frozenset({"pass", "fail", "invalid"})

#: LoadGen's Server scenario hard-codes its early-stopping test: confidence 0.99, tolerance 0.
LOADGEN_SERVER_TEST = EarlyStoppingSpec(confidence=0.99, tolerance=0.0)

# Which value of observe()'s tuple each constrained series reads.
_VALUE_INDEX = {"ttft_ns": 0, "tpot_ns": 1, "sample_latency_ns": 2}


@dataclass(frozen=True, slots=True)
class Judgement:
    """One constraint judged on its counts.

    ``min_queries`` is ``h(t) + t``; ``max_over_limit`` the most over-limit
    samples the empirical percentile tolerates among ``samples`` (-1 when
    there are none).
    """

    samples: int
    over_limit: int
    min_queries: int
    queries_needed: int
    max_over_limit: int
    enough_queries: bool
    percentile_within_limit: bool
    state: str

    @property
    def attainment(self) -> float | None:
        """Fraction of the judged samples within the limit (``None`` before the first)."""
        return (self.samples - self.over_limit) / self.samples if self.samples else None


def judge(samples: int, over_limit: int, percentile: float, *, final: bool) -> Judgement:
    """LoadGen's Server decision for ``over_limit`` of ``samples`` (``percentile`` in percent)."""
    n, t = int(samples), int(over_limit)
    if n < 0 or t < 0 or t > n:
        raise ValueError(f"need 0 <= over_limit <= samples, got {t} of {n}")
    min_queries = min_queries_for(t, float(percentile))
    needed, max_over, code = decide(n, t, min_queries, percent_to_fraction(percentile), final)
    return Judgement(
        n, t, min_queries, needed, max_over, n > 0 and needed == 0, t <= max_over, STATES[code]
    )


def decide(n: int, t: int, min_queries: int, fraction: float, final: bool) -> tuple[int, int, int]:
    """The arithmetic of :func:`judge`: ``(queries needed, max over limit, state code)``.

    ``min_queries`` is ``h(t) + t``; ``fraction`` the percentile as LoadGen's double.
    Kept apart (plain ints, no object) because the aggregator decides at every snapshot.
    """
    needed = min_queries - n if min_queries > n else 0
    if n:
        # LoadGen's index sorted[n * p] (the loadgen percentile method), capped at n - 1
        index = int(float(n) * fraction)
        max_over = n - 1 - (index if index < n else n - 1)
    else:
        max_over = -1
    within = t <= max_over
    enough = n > 0 and needed == 0
    if final:
        return needed, max_over, _PASS if enough and within else _FAIL
    if n == 0:
        return needed, max_over, _PENDING
    if not within:
        return needed, max_over, _FAILING
    return needed, max_over, _ON_TRACK if enough else _PENDING


_PENDING, _ON_TRACK, _FAILING, _PASS, _FAIL = range(5)


@functools.lru_cache(maxsize=4096)
def min_queries_for(t: int, percentile: float) -> int:
    """``h(t) + t`` at LoadGen's Server test (memoised: judged again at every snapshot)."""
    spec = LOADGEN_SERVER_TEST
    h = find_min_passing(
        t, percent_to_fraction(percentile), confidence=spec.confidence, tolerance=spec.tolerance
    )
    return h + t


def combine_states(states: Sequence[str], *, final: bool, complete: bool = True) -> str:
    """The run's state from its constraints' states.

    Final: ``pass`` only when every constraint passes and the run is complete.
    Live: ``failing`` if any is, else ``pending`` if any is, else ``on_track``.
    """
    if final:
        return "pass" if complete and states and all(s == "pass" for s in states) else "fail"
    if any(s == "failing" for s in states):
        return "failing"
    if not states or any(s == "pending" for s in states):
        return "pending"
    return "on_track"


class ConstraintTracker:
    """Exact counts of a run's constraints, fed one tracked sample at a time."""

    __slots__ = (
        "_checks",
        "constraints",
        "good_output_tokens",
        "good_samples",
        "over_limit",
        "samples",
        "samples_observed",
    )

    def __init__(self, constraints: Sequence[Constraint]) -> None:
        # no constraint at all is allowed: an Offline run is judged on validity alone
        self.constraints: tuple[Constraint, ...] = tuple(constraints)
        k = len(self.constraints)
        #: per constraint: samples judged (``n``) and over the limit (``t``)
        self.samples = [0] * k
        self.over_limit = [0] * k
        #: samples observed at all, good ones, and the output tokens of good ones
        self.samples_observed = 0
        self.good_samples = 0
        self.good_output_tokens = 0
        self._checks = tuple(
            (i, _VALUE_INDEX[c.series], c.limit_ns) for i, c in enumerate(self.constraints)
        )

    def observe(
        self,
        *,
        failed: bool,
        ttft_ns: int | None,
        tpot_ns: float | None,
        latency_ns: int | None,
        output_tokens: int | None,
    ) -> None:
        """Judge one tracked sample whose constrained values are all known.

        Call exactly once per sample. A value of ``None`` means the sample has
        none for that series (no first chunk, a single chunk so no TPOT, ...):
        the constraints on it skip the sample, the others judge it. A sample is
        good when it did not fail and no value it has is over its limit; its
        ``output_tokens`` (when known) count as good output tokens.
        """
        self.add(failed, ttft_ns, tpot_ns, latency_ns, output_tokens)

    def add(
        self,
        failed: bool,
        ttft_ns: int | None,
        tpot_ns: float | None,
        latency_ns: int | None,
        output_tokens: int | None,
    ) -> None:
        """:meth:`observe` with positional arguments (the aggregator's per-completion call)."""
        values = (ttft_ns, tpot_ns, latency_ns)
        good = not failed
        samples, over = self.samples, self.over_limit
        for i, vi, limit in self._checks:
            v = values[vi]
            if v is None:
                continue
            samples[i] += 1
            if v > limit:
                over[i] += 1
                good = False
        self.samples_observed += 1
        if good:
            self.good_samples += 1
            if output_tokens:
                self.good_output_tokens += int(output_tokens)

    def judgements(self, *, final: bool = False) -> list[Judgement]:
        """Every constraint judged on the counts so far, in constraint order."""
        return [
            judge(n, t, c.percentile, final=final)
            for c, n, t in zip(self.constraints, self.samples, self.over_limit, strict=True)
        ]
