"""The Report's ``verdict`` block: a run judged against its latency constraints (SPEC §7, §10).

:func:`verdict_block` judges a snapshot (its counters, plus its series for the
fallback below) and returns the JSON-ready block, with one plain-words reason
per constraint. Two sources, best first:

* ``counters``: the exact per-sample counts the aggregator kept for that very
  constraint (same series, percentile and limit), carried by the snapshot's
  verdict counters (:mod:`registry.verdict_counters`);
* ``hdr``: for a constraint the run was not aggregated with, the series' HDR
  histogram: ``n`` is the series count and the number over the limit is known
  to within the values that share an HDR bucket with the limit. The decision
  is given only when both ends of that range agree; otherwise
  :class:`VerdictUndecided` says why. (These are the series' values, which
  upstream's rules record for failed samples too.)

A run that is not complete never passes. The decision is LoadGen's Server one
(:func:`registry.mlperf.constraints.judge`). This module only reads; it never
writes a file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from registry.hdr import count_over
from registry.mlperf.constraints import Judgement, combine_states, judge
from registry.mlperf.slo import Constraint, format_limit
from registry.snapshot import SeriesStat
from registry.verdict_counters import ConstraintReading, read_verdict

__all__ = ["VerdictUndecided", "verdict_block"]


class VerdictUndecided(ValueError):
    """A constraint cannot be judged from what the snapshot holds; the message says why."""


def _pct(p: float) -> str:
    return f"p{p:g}"


def _reason(c: Constraint, j: Judgement, *, final: bool, approx: str = "") -> str:
    head = f"{c.describe()}: {j.over_limit:,}{approx} of {j.samples:,} samples over the limit"
    if j.samples == 0:
        return f"{c.describe()}: no sample has a {c.stem} value"
    parts = [head]
    if j.percentile_within_limit:
        parts.append(f"the {_pct(c.percentile)} by LoadGen's method is within it")
    else:
        parts.append(
            f"the {_pct(c.percentile)} by LoadGen's method is over it: at most "
            f"{max(j.max_over_limit, 0):,} of {j.samples:,} may be"
        )
    if j.enough_queries:
        parts.append(f"enough samples for early stopping (at least {j.min_queries:,} needed)")
    else:
        parts.append(
            f"early stopping needs at least {j.min_queries:,} samples with {j.over_limit:,} "
            f"over, {j.queries_needed:,} more"
        )
    verdict = j.state.upper() if final else j.state
    return f"{verdict}: " + "; ".join(parts)


def _entry(
    c: Constraint,
    j: Judgement,
    source: str,
    reason: str,
    over_range: tuple[int, int] | None = None,
) -> dict[str, Any]:
    attainment = j.attainment
    over_min, over_max = over_range if over_range is not None else (j.over_limit, j.over_limit)
    return {
        "name": c.key,
        "series": c.series,
        "percentile": float(c.percentile),
        "limit_ns": c.limit_ns,
        "limit": format_limit(c.limit_ns),
        "source": source,
        "samples": j.samples,
        "over_limit": over_min,
        "over_limit_max": over_max,
        "attainment": attainment if attainment is None or math.isfinite(attainment) else None,
        "min_queries": j.min_queries,
        "queries_needed": j.queries_needed,
        "percentile_within_limit": j.percentile_within_limit,
        "enough_queries": j.enough_queries,
        "state": j.state,
        "reason": reason,
    }


def _from_hdr(
    c: Constraint, stat: SeriesStat | None, *, final: bool
) -> tuple[Judgement, dict[str, Any]]:
    if stat is None or stat.hdr is None:
        raise VerdictUndecided(
            f"{c.describe()}: no exact counts for this constraint (the run was aggregated "
            f"without it) and no HDR histogram of {c.series} to count from"
        )
    try:
        total, surely, maybe = count_over(stat.hdr, c.limit_ns)
    except ValueError as exc:
        raise VerdictUndecided(f"{c.describe()}: {exc}") from None
    lo = judge(total, surely, c.percentile, final=final)
    hi = judge(total, surely + maybe, c.percentile, final=final)
    if lo.state != hi.state:
        raise VerdictUndecided(
            f"{c.describe()}: cannot be decided from the HDR data: {maybe:,} values lie within "
            "HDR precision of the limit, and the verdict depends on which side they are "
            "(aggregate the run with this constraint for exact counts)"
        )
    # judged at the worse end of the range (both ends agree); the reason shows the range
    approx = f" (at least {surely:,})" if maybe else ""
    reason = _reason(c, hi, final=final, approx=approx) + " (counted from the HDR histogram)"
    return hi, _entry(c, hi, "hdr", reason, over_range=(surely, surely + maybe))


def verdict_block(
    counters: Mapping[str, int | float],
    *,
    terminal: bool,
    complete: bool,
    incomplete_reason: str | None,
    series: Mapping[str, SeriesStat] | None = None,
    constraints: Sequence[Constraint] | None = None,
    ruleset: str | None = None,
    tracked_duration_s: float | None = None,
) -> dict[str, Any] | None:
    """The verdict of a snapshot, or ``None`` when there is nothing to judge.

    ``constraints`` ``None``: the snapshot's own constraints (from its
    counters); given: exactly those (``report --ruleset``). ``terminal``: the
    snapshot is final (states pass/fail) rather than live. Raises
    :class:`VerdictUndecided` when a requested constraint cannot be judged.
    """
    reading = read_verdict(counters)
    known: dict[str, ConstraintReading] = {}
    if reading is not None:
        known = {r.key: r for r in reading.constraints}
    if constraints is None:
        if reading is None:
            return None
        constraints = [r.constraint for r in reading.constraints]
    if not constraints:
        return None
    entries: list[dict[str, Any]] = []
    states: list[str] = []
    exact = True
    for c in constraints:
        r = known.get(c.key)
        if r is not None and r.limit_ns == c.limit_ns and r.series == c.series:
            j = judge(r.samples, r.over_limit, c.percentile, final=terminal)
            entries.append(_entry(c, j, "counters", _reason(c, j, final=terminal)))
        else:
            j, entry = _from_hdr(c, (series or {}).get(c.series), final=terminal)
            entries.append(entry)
            exact = False
        states.append(j.state)
    state = combine_states(states, final=terminal, complete=complete)
    decision = "pass" if terminal and complete and state == "pass" else "fail"
    reasons = [e["reason"] for e in entries]
    if not complete:
        reasons.insert(0, f"INCOMPLETE: the run cannot pass: {incomplete_reason or 'not complete'}")
    # Good samples count against the run's own constraints: only those judged on exactly them.
    own = reading is not None and {(c.key, c.limit_ns) for c in constraints} == {
        (r.key, r.limit_ns) for r in reading.constraints
    }
    good = reading.good_samples if own and reading is not None else None
    good_tokens = reading.good_output_tokens if own and reading is not None else None
    seconds = tracked_duration_s if tracked_duration_s and tracked_duration_s > 0 else None
    return {
        "decision": decision,
        "state": state,
        "ruleset": ruleset,
        "exact": exact,
        "complete": complete,
        "constraints": entries,
        "good_samples": good,
        "good_output_tokens": good_tokens,
        "goodput": good / seconds if good is not None and seconds else None,
        "token_goodput": good_tokens / seconds if good_tokens is not None and seconds else None,
        "reasons": reasons,
    }
