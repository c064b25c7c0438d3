"""VALID or INVALID, with LoadGen's four reasons (SPEC §10, "Validity, as LoadGen decides it").

MLPerf LoadGen writes in ``mlperf_log_summary.txt`` "Result is : VALID" only
when four things hold (``loadgen/results.cc``, ``LogSummary``, at
mlcommons/inference commit ``05a9cec3596d4018ed22b934d9b8c04b7369086c``):

* *performance constraints* (Server only): every constrained percentile, by
  LoadGen's method, within its limit;
* *min duration*: Server: the last query's issue time since the start is at
  least ``min_duration``; Offline: the time until the last sample completed;
* *min queries*: queries issued at least ``min_query_count`` (Offline maps it
  to samples);
* *early stopping* (Server): enough queries for each constraint's over-limit
  count: queries issued ``>= h(t) + t`` (LoadGen compares the queries issued,
  not the samples that have a value). Offline has none: always satisfied.

:func:`judge_validity` takes the figures (duration, queries issued, the
per-constraint :class:`~registry.mlperf.constraints.Judgement`) and the
:class:`~registry.mlperf.requirements.Requirements` and returns a
:class:`Validity`: the result, each reason with its figure and requirement,
and, live, the time and queries still needed with an ETA at the current rate.

States: live ``pending`` / ``on_track`` / ``failing`` (as the constraints'),
final ``valid`` / ``invalid``. Pure arithmetic: no registry, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from registry.mlperf.constraints import Judgement
from registry.mlperf.requirements import Requirements

__all__ = [
    "REASONS",
    "REASON_LABELS",
    "VALIDITY_STATES",
    "Reason",
    "Validity",
    "format_duration",
    "judge_validity",
]

#: LoadGen's reasons, in the order of its summary.
REASONS: tuple[str, ...] = (
    "performance_constraints",
    "min_duration",
    "min_queries",
    "early_stopping",
)
#: Every validity state, in the order of their numeric codes on the snapshot stream (0..4).
VALIDITY_STATES: tuple[str, ...] = ("pending", "on_track", "failing", "valid", "invalid")

REASON_LABELS = {
    "performance_constraints": "Performance constraints",
    "min_duration": "Min duration",
    "min_queries": "Min queries",
    "early_stopping": "Early stopping",
}


def format_duration(ns: int | float) -> str:
    """``9m40s``, ``1h02m``, ``12.5s``, ``350ms``: short, for people."""
    s = float(ns) / 1e9
    if s < 1.0:
        return f"{s * 1000:.0f}ms"
    if s < 60.0:
        return f"{s:.1f}s".replace(".0s", "s")
    total = int(s)
    h, rem = divmod(total, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


@dataclass(frozen=True, slots=True)
class Reason:
    """One of LoadGen's reasons: ``satisfied`` is ``None`` where it does not apply."""

    name: str
    satisfied: bool | None
    figure: str
    requirement: str
    source: str

    @property
    def label(self) -> str:
        return REASON_LABELS[self.name]

    @property
    def answer(self) -> str:
        """LoadGen's word for it: ``Yes``, ``NO``, or ``n/a``."""
        return "n/a" if self.satisfied is None else ("Yes" if self.satisfied else "NO")

    def text(self) -> str:
        return f"{self.label} satisfied: {self.answer} ({self.figure}; {self.requirement})"


@dataclass(frozen=True, slots=True)
class Validity:
    """A run's validity, final (``result`` VALID/INVALID) or live (``result`` ``None``)."""

    state: str
    result: str | None
    reasons: tuple[Reason, ...]
    requirements: Requirements
    duration_ns: int
    queries: int
    duration_needed_ns: int
    queries_needed: int
    eta_s: float | None

    @property
    def submittable(self) -> bool:
        return self.requirements.submittable

    @property
    def constraints_ok(self) -> bool:
        """Performance constraints and early stopping hold (or do not apply)."""
        return all(
            r.satisfied is not False
            for r in self.reasons
            if r.name in ("performance_constraints", "early_stopping")
        )

    def headline(self) -> str:
        """``INVALID (min duration)``, ``VALID (not submittable: overridden min_duration)``,
        ``ON TRACK, 9m40s and 20,534 queries still needed (ETA 9m40s)``."""
        if self.result is not None:
            if self.result == "VALID":
                if self.submittable:
                    return "VALID"
                why = ", ".join(self.requirements.overridden) or "no ruleset"
                return f"VALID (not submittable: {why})"
            failed = [r.label.lower() for r in self.reasons if r.satisfied is False]
            return f"INVALID ({', '.join(failed) or 'incomplete run'})"
        head = self.state.upper().replace("_", " ")
        need = []
        if self.duration_needed_ns > 0:
            need.append(format_duration(self.duration_needed_ns))
        if self.queries_needed > 0:
            need.append(f"{self.queries_needed:,} queries")
        if not need:
            return head
        text = f"{head}, {' and '.join(need)} still needed"
        if self.eta_s is not None:
            text += f" (ETA {format_duration(self.eta_s * 1e9)})"
        return text


def judge_validity(
    requirements: Requirements,
    *,
    duration_ns: int,
    queries: int,
    judgements: Sequence[Judgement],
    final: bool,
    complete: bool = True,
    rate_qps: float | None = None,
) -> Validity:
    """The run's validity from its figures.

    ``duration_ns``: the scenario's duration figure (see the module docstring);
    ``queries``: queries issued; ``judgements``: the latency constraints, judged
    (``final`` as this call). ``rate_qps``: queries per second so far, for the
    ETA. An incomplete run is never VALID.
    """
    req = requirements
    duration_ns, queries = max(0, int(duration_ns)), max(0, int(queries))
    reasons: list[Reason] = []
    if judgements:
        within = all(j.percentile_within_limit for j in judgements)
        over = ", ".join(f"{j.over_limit:,} of {j.samples:,} over" for j in judgements)
        tolerated = ", ".join(f"at most {max(j.max_over_limit, 0):,}" for j in judgements)
        reasons.append(
            Reason("performance_constraints", within, over, tolerated, "the latency constraints")
        )
    else:
        reasons.append(
            Reason(
                "performance_constraints",
                None,
                "no latency constraint",
                f"none in {req.scenario.title()}",
                "LoadGen",
            )
        )
    reasons.append(
        Reason(
            "min_duration",
            duration_ns >= req.min_duration_ns,
            format_duration(duration_ns),
            f"at least {format_duration(req.min_duration_ns)}",
            req.duration_source,
        )
    )
    reasons.append(
        Reason(
            "min_queries",
            queries >= req.min_queries,
            f"{queries:,} queries",
            f"at least {req.min_queries:,}",
            req.queries_source,
        )
    )
    # LoadGen's test compares the queries issued (not the samples with a value) to h(t) + t
    es_needed = max((j.min_queries - queries for j in judgements), default=0)
    es_needed = max(es_needed, 0)
    if judgements:
        enough = es_needed == 0 and queries > 0
        reasons.append(
            Reason(
                "early_stopping",
                enough,
                f"{queries:,} queries" + (f", {es_needed:,} more needed" if es_needed else ""),
                "at least " + ", ".join(f"{j.min_queries:,}" for j in judgements),
                "LoadGen's binomial test (confidence 0.99)",
            )
        )
    else:
        reasons.append(Reason("early_stopping", True, "not applied", "none", "LoadGen"))
    duration_needed = max(0, req.min_duration_ns - duration_ns)
    queries_needed = max(req.min_queries - queries, es_needed, 0)
    eta: float | None = None
    if duration_needed or queries_needed:
        by_time = duration_needed / 1e9
        by_queries = (
            queries_needed / rate_qps
            if rate_qps is not None and rate_qps > 0 and math.isfinite(rate_qps)
            else (math.inf if queries_needed else 0.0)
        )
        eta = max(by_time, by_queries)
        if not math.isfinite(eta):
            eta = None
    all_ok = all(r.satisfied is not False for r in reasons)
    if final:
        valid = all_ok and complete
        return Validity(
            "valid" if valid else "invalid",
            "VALID" if valid else "INVALID",
            tuple(reasons),
            req,
            duration_ns,
            queries,
            duration_needed,
            queries_needed,
            None,
        )
    # live: failing when a percentile is over its limit now; on track once queries flow
    if any(j.samples and not j.percentile_within_limit for j in judgements):
        state = "failing"
    elif queries == 0:
        state = "pending"
    else:
        state = "on_track"
    return Validity(
        state, None, tuple(reasons), req, duration_ns, queries, duration_needed, queries_needed, eta
    )
