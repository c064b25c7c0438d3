"""The Report's ``verdict`` block: a run judged against its latency constraints (SPEC §7, §10).

:func:`verdict_block` judges a snapshot (its counters, plus its series for the
fallback below) and returns the JSON-ready block, with one plain-words reason
per constraint. Two sources, best first:

* ``counters``: the exact per-sample counts the aggregator kept for that very
  constraint (same series, percentile and limit), carried by the snapshot's
  verdict counters (:mod:`registry.mlperf.verdict_counters`);
* ``hdr``: for a constraint the run was not aggregated with, the series' HDR
  histogram: ``n`` is the series count and the number over the limit is known
  to within the values that share an HDR bucket with the limit. The decision
  is given only when both ends of that range agree; otherwise
  :class:`VerdictUndecided` says why. (These are the series' values, which
  upstream's rules record for failed samples too.)

A run that is not complete never passes. The decision is LoadGen's Server one
(:func:`registry.mlperf.constraints.judge`).

With validity requirements (a ruleset, or ``--min-duration``/``--min-queries``)
the block also carries ``result`` (VALID/INVALID) and ``validity``: LoadGen's
four reasons, each with its figure and requirement
(:mod:`registry.mlperf.validity`); the decision is then ``pass`` only for a
VALID result. The figures come from the aggregator's validity counters when
the run was judged in the same scenario; otherwise queries issued are
``tracked_samples_issued`` and the duration is the tracked duration (to the
latest completion: for Server, later than LoadGen's last issue, which the
block says). This module only reads; it never writes a file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from registry.core.hdr import count_over
from registry.delivery.snapshot import SeriesStat
from registry.mlperf.constraints import Judgement, combine_states, judge
from registry.mlperf.requirements import Requirements, requirements_entry
from registry.mlperf.slo import Constraint, format_limit
from registry.mlperf.validity import Validity, judge_validity
from registry.mlperf.verdict_counters import (
    ConstraintReading,
    read_validity,
    read_verdict,
    run_state_of,
)

__all__ = ["VerdictUndecided", "validity_entry", "verdict_block"]


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
    requirements: Requirements | None = None,
) -> dict[str, Any] | None:
    """The verdict of a snapshot, or ``None`` when there is nothing to judge.

    ``constraints`` ``None``: the snapshot's own constraints (from its
    counters); given: exactly those (``report --ruleset``). ``terminal``: the
    snapshot is final (states pass/fail) rather than live. Raises
    :class:`VerdictUndecided` when a requested constraint cannot be judged.
    ``requirements``: judge validity on these; ``None``: on the snapshot's own
    (its validity counters) when ``constraints`` is ``None`` too.
    """
    reading = read_verdict(counters)
    recorded = read_validity(counters)
    if requirements is None and constraints is None and recorded is not None:
        requirements = recorded.requirements
    known: dict[str, ConstraintReading] = {}
    if reading is not None:
        known = {r.key: r for r in reading.constraints}
    if constraints is None:
        if reading is None:
            return None
        constraints = [r.constraint for r in reading.constraints]
    if not constraints and requirements is None:
        return None
    judgements: list[Judgement] = []
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
        judgements.append(j)
    state = combine_states(states, final=terminal, complete=complete)
    validity: dict[str, Any] | None = None
    if requirements is not None:
        v, figure = _validity(
            counters, requirements, recorded, judgements, terminal, complete, tracked_duration_s
        )
        if terminal or not judgements:
            state = run_state_of(v)
        validity = validity_entry(v, figure, submittable=_submittable(v, recorded, requirements))
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
    block: dict[str, Any] = {
        "decision": decision,
        "state": state,
        "result": validity["result"] if validity is not None else None,
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
    if validity is not None:
        block["validity"] = validity
        reasons[:0] = [f"{validity['headline']}"] + [
            r["text"] for r in validity["reasons"] if r["satisfied"] is False
        ]
    return block


def _submittable(v: Validity, recorded: Any, requirements: Requirements) -> bool:
    # read back from counters the ruleset is not known: the aggregator recorded it
    if recorded is not None and requirements is recorded.requirements:
        return bool(recorded.submittable)
    return v.submittable


def _validity(
    counters: Mapping[str, int | float],
    req: Requirements,
    recorded: Any,
    judgements: Sequence[Judgement],
    terminal: bool,
    complete: bool,
    tracked_duration_s: float | None,
) -> tuple[Validity, str]:
    """Validity judged on the snapshot's figures, and which duration figure was used."""
    queries = int(counters.get("tracked_samples_issued", 0) or 0)
    if recorded is not None and recorded.requirements.scenario == req.scenario:
        duration_ns = recorded.duration_ns
        figure = (
            "to the last tracked issue"
            if req.scenario == "server"
            else "to the latest tracked completion"
        )
    else:
        duration_ns = int(counters.get("tracked_duration_ns", 0) or 0)
        figure = (
            "to the latest tracked completion (the run recorded no last-issue time: "
            "LoadGen counts to the last issue)"
            if req.scenario == "server"
            else "to the latest tracked completion"
        )
    seconds = duration_ns / 1e9
    v = judge_validity(
        req,
        duration_ns=duration_ns,
        queries=queries,
        judgements=judgements,
        final=terminal,
        complete=complete,
        rate_qps=queries / seconds if seconds > 0 else None,
    )
    return v, figure


def validity_entry(v: Validity, duration_figure: str, *, submittable: bool) -> dict[str, Any]:
    """The Report's ``verdict.validity`` block."""
    headline = v.headline()
    if v.result == "VALID" and submittable != v.submittable:
        headline = "VALID" if submittable else headline
    return {
        "result": v.result,
        "state": v.state,
        "headline": headline,
        "submittable": submittable,
        "scenario": v.requirements.scenario,
        "requirements": requirements_entry(v.requirements) | {"submittable": submittable},
        "duration_s": v.duration_ns / 1e9,
        "duration_figure": duration_figure,
        "queries": v.queries,
        "duration_needed_s": v.duration_needed_ns / 1e9,
        "queries_needed": v.queries_needed,
        "eta_s": v.eta_s,
        "reasons": [
            {
                "name": r.name,
                "satisfied": r.satisfied,
                "answer": r.answer,
                "figure": r.figure,
                "requirement": r.requirement,
                "source": r.source,
                "text": r.text(),
            }
            for r in v.reasons
        ],
    }
