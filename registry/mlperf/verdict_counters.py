"""The verdict on the snapshot stream: counter names, writing them, reading them back (SPEC §10).

A run with constraints carries, in every snapshot, these counters after the
aggregator's own (so upstream's subscriber simply sees more counters):

* ``good_samples`` (monotonic): tracked samples that succeeded within every limit;
* ``good_output_tokens`` (monotonic): their output tokens;
* ``goodput_samples_per_second`` (settable float): good samples / tracked duration;
* ``goodput_tokens_per_second`` (settable float): good output tokens / tracked duration;
* ``verdict_state`` (settable): the run's state code (see below);

then for each constraint, in configuration order:

* ``constraint_<key>_limit_ns`` (settable): the limit (a value above it is over);
* ``constraint_<key>_samples`` (monotonic): ``n``, the samples judged on it;
* ``constraint_<key>_over_limit`` (monotonic): ``t``, those over the limit;
* ``constraint_<key>_queries_needed`` (settable): ``max(0, h(t) + t - n)``;
* ``constraint_<key>_state`` (settable): its state code;

With validity requirements (a ruleset, or ``--min-duration``/``--min-queries``),
after those (SPEC §10, "Validity"):

* ``validity_state`` (settable): code in
  :data:`registry.mlperf.validity.VALIDITY_STATES` (0 pending, 1 on_track,
  2 failing, 3 valid, 4 invalid);
* ``validity_scenario`` (settable): 0 Server, 1 Offline;
* ``validity_overridden`` (settable): bit 1 min duration, bit 2 min queries
  were overridden (a VALID result is then not submittable);
* ``validity_submittable`` (settable): 1 when the requirements are a ruleset's, unmodified;
* ``validity_min_duration_ns``, ``validity_min_queries`` (settable): the requirements;
* ``validity_duration_ns``, ``validity_queries`` (settable): the figures;
* ``validity_duration_needed_ns``, ``validity_queries_needed`` (settable):
  what is still needed (queries: the larger of min queries and early stopping);
* ``validity_eta_seconds`` (settable float): when both will be reached at the
  current rate (-1: unknown);
* ``validity_reason_<reason>`` (settable) for each of LoadGen's four reasons: 1
  satisfied, 0 not, 2 not applicable.

When validity is judged, the run's final ``verdict_state`` follows it:
``pass`` only for a VALID result, ``invalid`` when the latency constraints
pass but min duration or min queries does not (live it stays the
constraints' state; ``validity_state`` is LoadGen's live view).

``<key>`` is as in
:attr:`registry.mlperf.slo.Constraint.key` (``ttft_p99``), which also says the
series and percentile. State codes are the index in
:data:`registry.mlperf.constraints.STATES`: 0 pending, 1 on_track, 2 failing,
3 pass, 4 fail. :func:`read_verdict` turns a snapshot's counters back into
:class:`VerdictReading`; readers (report, exporter, live view) use it and
never parse names themselves.

This module writes only the counters it registered and never decides a
state: :mod:`registry.mlperf.constraints` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from registry.core.metrics_registry import MetricsRegistry
from registry.core.percentiles import percent_to_fraction
from registry.mlperf.constraints import (
    STATES,
    ConstraintTracker,
    combine_states,
    decide,
    min_queries_for,
)
from registry.mlperf.requirements import SCENARIOS, Requirements
from registry.mlperf.slo import Constraint, parse_key
from registry.mlperf.validity import REASONS, VALIDITY_STATES, Validity, judge_validity

__all__ = [
    "GOODPUT_SAMPLES",
    "GOODPUT_TOKENS",
    "GOOD_OUTPUT_TOKENS",
    "GOOD_SAMPLES",
    "VERDICT_STATE",
    "ConstraintReading",
    "ValidityReading",
    "VerdictCounters",
    "VerdictReading",
    "constraint_counter",
    "is_verdict_counter",
    "merged_verdict_counters",
    "read_validity",
    "read_verdict",
    "run_state_of",
    "verdict_counter_names",
]

GOOD_SAMPLES = "good_samples"
GOOD_OUTPUT_TOKENS = "good_output_tokens"
GOODPUT_SAMPLES = "goodput_samples_per_second"
GOODPUT_TOKENS = "goodput_tokens_per_second"
VERDICT_STATE = "verdict_state"
_RUN_COUNTERS = (GOOD_SAMPLES, GOOD_OUTPUT_TOKENS, GOODPUT_SAMPLES, GOODPUT_TOKENS, VERDICT_STATE)
_FIELDS = ("limit_ns", "samples", "over_limit", "queries_needed", "state")
_PREFIX = "constraint_"
VALIDITY_STATE = "validity_state"
_VALIDITY_FIELDS = (
    VALIDITY_STATE,
    "validity_scenario",
    "validity_overridden",
    "validity_submittable",
    "validity_min_duration_ns",
    "validity_min_queries",
    "validity_duration_ns",
    "validity_queries",
    "validity_duration_needed_ns",
    "validity_queries_needed",
    "validity_eta_seconds",
    *(f"validity_reason_{r}" for r in REASONS),
)
_OVERRIDE_BITS = {"min_duration": 1, "min_queries": 2}


def constraint_counter(key: str, field: str) -> str:
    """``constraint_<key>_<field>``; ``field`` one of limit_ns, samples, over_limit,
    queries_needed, state."""
    if field not in _FIELDS:
        raise ValueError(f"unknown constraint counter field {field!r}")
    return f"{_PREFIX}{key}_{field}"


def verdict_counter_names(constraints: Sequence[Constraint]) -> tuple[str, ...]:
    """Every verdict counter of a run with ``constraints``, in registration order."""
    names = list(_RUN_COUNTERS)
    for c in constraints:
        names += [constraint_counter(c.key, f) for f in _FIELDS]
    return tuple(names)


def is_verdict_counter(name: str) -> bool:
    """Whether ``name`` is one of the counters this module defines (for any constraint)."""
    if name in _RUN_COUNTERS or name in _VALIDITY_FIELDS:
        return True
    if not name.startswith(_PREFIX):
        return False
    for f in _FIELDS:
        if name.endswith("_" + f):
            try:
                parse_key(name[len(_PREFIX) : -len(f) - 1])
            except ValueError:
                return False
            return True
    return False


class VerdictCounters:
    """The verdict counters of one run on one registry: registered once, written per snapshot.

    Registering sets every limit and the initial states (pending) and queries
    needed. :meth:`write` folds the tracker's counts and the states judged on
    them, with :func:`registry.mlperf.constraints.decide` (the arithmetic of
    ``judge``, without objects), so a fold costs a few microseconds.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        tracker: ConstraintTracker,
        requirements: Requirements | None = None,
    ) -> None:
        self.registry = registry
        self.tracker = tracker
        self.requirements = requirements
        #: the validity judged at the last write (``None`` without requirements)
        self.validity: Validity | None = None
        for name in _RUN_COUNTERS:
            if name in (GOODPUT_SAMPLES, GOODPUT_TOKENS):
                registry.register_counter(name, dtype=float, settable=True)
            else:
                registry.register_counter(name, settable=name == VERDICT_STATE)
        self._names: list[tuple[str, str, str, str]] = []
        for c in tracker.constraints:
            for f in _FIELDS:
                settable = f in ("limit_ns", "queries_needed", "state")
                registry.register_counter(constraint_counter(c.key, f), settable=settable)
            registry.set_counter(constraint_counter(c.key, "limit_ns"), c.limit_ns)
            self._names.append(
                tuple(constraint_counter(c.key, f) for f in _FIELDS[1:])  # type: ignore[arg-type]
            )
        self._fractions = [percent_to_fraction(c.percentile) for c in tracker.constraints]
        self._percents = [float(c.percentile) for c in tracker.constraints]
        if requirements is not None:
            for name in _VALIDITY_FIELDS:
                registry.register_counter(
                    name, dtype=float if name == "validity_eta_seconds" else int, settable=True
                )
            registry.set_counter("validity_scenario", SCENARIOS.index(requirements.scenario))
            registry.set_counter(
                "validity_overridden",
                sum(_OVERRIDE_BITS[o] for o in requirements.overridden),
            )
            registry.set_counter("validity_submittable", int(requirements.submittable))
            registry.set_counter("validity_min_duration_ns", requirements.min_duration_ns)
            registry.set_counter("validity_min_queries", requirements.min_queries)
        self._written: tuple[int, int, bool, bool, int, int] | None = None
        self.write(tracked_duration_ns=0)

    def write(
        self,
        *,
        tracked_duration_ns: int,
        final: bool = False,
        complete: bool = True,
        validity_duration_ns: int | None = None,
        queries: int = 0,
    ) -> None:
        """Fold the tracker's counts and states into the counters.

        ``final``: judge as the end of the run (states pass/fail); ``complete``:
        whether the run ended normally (an incomplete run's verdict is fail).
        ``validity_duration_ns`` (default: the tracked duration) and ``queries``
        (tracked queries issued) are the validity figures.
        Nothing to do when nothing changed since the last write.
        """
        tracker = self.tracker
        vdur = tracked_duration_ns if validity_duration_ns is None else validity_duration_ns
        issued = queries
        key = (tracker.samples_observed, tracked_duration_ns, final, complete, vdur, issued)
        if key == self._written:
            return
        self._written = key
        reg = self.registry
        increment, set_counter, value = reg.increment, reg.set_counter, reg.counter_value
        codes = []
        for i, (samples, over, needed, state) in enumerate(self._names):
            n, t = tracker.samples[i], tracker.over_limit[i]
            min_queries = min_queries_for(t, self._percents[i])
            queries, _, code = decide(n, t, min_queries, self._fractions[i], final)
            if n != value(samples):
                increment(samples, n - value(samples))
            if t != value(over):
                increment(over, t - value(over))
            set_counter(needed, queries)
            set_counter(state, code)
            codes.append(code)
        good, tokens = tracker.good_samples, tracker.good_output_tokens
        if good != value(GOOD_SAMPLES):
            increment(GOOD_SAMPLES, good - value(GOOD_SAMPLES))
        if tokens != value(GOOD_OUTPUT_TOKENS):
            increment(GOOD_OUTPUT_TOKENS, tokens - value(GOOD_OUTPUT_TOKENS))
        seconds = tracked_duration_ns / 1e9
        set_counter(GOODPUT_SAMPLES, good / seconds if seconds > 0 else 0.0)
        set_counter(GOODPUT_TOKENS, tokens / seconds if seconds > 0 else 0.0)
        run_state = combine_states([STATES[c] for c in codes], final=final, complete=complete)
        if self.requirements is not None:
            validity_state = self._write_validity(vdur, issued, final=final, complete=complete)
            # live, the constraints' state stays (pending until early stopping has its
            # queries); the end, and a run without constraints, follow validity
            if final or not codes:
                run_state = validity_state
        set_counter(VERDICT_STATE, STATES.index(run_state))

    def _write_validity(
        self, duration_ns: int, queries: int, *, final: bool, complete: bool
    ) -> str:
        """Judge validity, write its counters, and return the run's state it implies."""
        assert self.requirements is not None
        set_counter = self.registry.set_counter
        v = judge_validity(
            self.requirements,
            duration_ns=duration_ns,
            queries=queries,
            judgements=self.tracker.judgements(final=final),
            final=final,
            complete=complete,
            rate_qps=queries / (duration_ns / 1e9) if duration_ns > 0 else None,
        )
        self.validity = v
        set_counter(VALIDITY_STATE, VALIDITY_STATES.index(v.state))
        set_counter("validity_duration_ns", v.duration_ns)
        set_counter("validity_queries", v.queries)
        set_counter("validity_duration_needed_ns", v.duration_needed_ns)
        set_counter("validity_queries_needed", v.queries_needed)
        set_counter("validity_eta_seconds", v.eta_s if v.eta_s is not None else -1.0)
        for r in v.reasons:
            set_counter(f"validity_reason_{r.name}", 2 if r.satisfied is None else int(r.satisfied))
        return run_state_of(v)


def run_state_of(v: Validity) -> str:
    """The run's verdict state a validity implies (a name in ``STATES``)."""
    if v.result is None:
        return v.state  # pending / on_track / failing: the same names
    if v.result == "VALID":
        return "pass"
    return "invalid" if v.constraints_ok else "fail"


@dataclass(frozen=True, slots=True)
class ValidityReading:
    """The validity counters of one snapshot, as figures (requirements, state, needs)."""

    state: str
    requirements: Requirements
    submittable: bool
    duration_ns: int
    queries: int
    duration_needed_ns: int
    queries_needed: int
    eta_s: float | None
    #: LoadGen's reason → satisfied (``None``: not applicable)
    reasons: dict[str, bool | None]


def read_validity(counters: Mapping[str, int | float]) -> ValidityReading | None:
    """The validity a snapshot's counters carry, or ``None`` when they carry none."""
    if VALIDITY_STATE not in counters:
        return None
    code = _int(counters, VALIDITY_STATE)
    scenario = _int(counters, "validity_scenario")
    bits = _int(counters, "validity_overridden")
    overridden = tuple(name for name, bit in _OVERRIDE_BITS.items() if bits & bit)
    req = Requirements(
        scenario=SCENARIOS[scenario] if 0 <= scenario < len(SCENARIOS) else "server",
        min_duration_ns=_int(counters, "validity_min_duration_ns"),
        min_queries=_int(counters, "validity_min_queries"),
        duration_source="recorded by the aggregator",
        queries_source="recorded by the aggregator",
        overridden=overridden,
    )
    eta = counters.get("validity_eta_seconds", -1.0)
    reasons: dict[str, bool | None] = {}
    for r in REASONS:
        v = _int(counters, f"validity_reason_{r}")
        reasons[r] = None if v == 2 else bool(v)
    return ValidityReading(
        state=VALIDITY_STATES[code] if 0 <= code < len(VALIDITY_STATES) else "pending",
        requirements=req,
        submittable=bool(_int(counters, "validity_submittable")),
        duration_ns=_int(counters, "validity_duration_ns"),
        queries=_int(counters, "validity_queries"),
        duration_needed_ns=_int(counters, "validity_duration_needed_ns"),
        queries_needed=_int(counters, "validity_queries_needed"),
        eta_s=float(eta)
        if isinstance(eta, int | float) and math.isfinite(eta) and eta >= 0
        else None,
        reasons=reasons,
    )


@dataclass(frozen=True, slots=True)
class ConstraintReading:
    """One constraint as a snapshot carries it."""

    key: str
    series: str
    percentile: float
    limit_ns: int
    samples: int
    over_limit: int
    queries_needed: int
    state: str

    @property
    def constraint(self) -> Constraint:
        return Constraint(self.series, self.percentile, self.limit_ns)


@dataclass(frozen=True, slots=True)
class VerdictReading:
    """The verdict counters of one snapshot (``state`` of the run, then per constraint)."""

    state: str
    good_samples: int
    good_output_tokens: int
    goodput_samples_per_second: float
    goodput_tokens_per_second: float
    constraints: tuple[ConstraintReading, ...]


def _int(counters: Mapping[str, int | float], name: str) -> int:
    v = counters.get(name, 0)
    return int(v) if isinstance(v, int | float) and math.isfinite(v) else 0


def _state(code: int | float | None) -> str:
    if isinstance(code, int | float) and math.isfinite(code) and 0 <= int(code) < len(STATES):
        return STATES[int(code)]
    return "pending"


def read_verdict(counters: Mapping[str, int | float]) -> VerdictReading | None:
    """The verdict a snapshot's counters carry, or ``None`` when they carry none.

    Constraints are found by their ``_limit_ns`` counters, in counter order; a
    malformed one (a foreign counter that merely looks alike) is skipped.
    """
    if VERDICT_STATE not in counters:
        return None
    readings = []
    for name, value in counters.items():
        if not (name.startswith(_PREFIX) and name.endswith("_limit_ns")):
            continue
        key = name[len(_PREFIX) : -len("_limit_ns")]
        try:
            series, pct = parse_key(key)
        except ValueError:
            continue
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 1:
            continue
        readings.append(
            ConstraintReading(
                key=key,
                series=series,
                percentile=pct,
                limit_ns=int(value),
                samples=_int(counters, constraint_counter(key, "samples")),
                over_limit=_int(counters, constraint_counter(key, "over_limit")),
                queries_needed=_int(counters, constraint_counter(key, "queries_needed")),
                state=_state(counters.get(constraint_counter(key, "state"))),
            )
        )
    rate = counters.get(GOODPUT_SAMPLES, 0.0)
    token_rate = counters.get(GOODPUT_TOKENS, 0.0)
    return VerdictReading(
        state=_state(counters.get(VERDICT_STATE)),
        good_samples=_int(counters, GOOD_SAMPLES),
        good_output_tokens=_int(counters, GOOD_OUTPUT_TOKENS),
        goodput_samples_per_second=float(rate) if math.isfinite(rate) else 0.0,
        goodput_tokens_per_second=float(token_rate) if math.isfinite(token_rate) else 0.0,
        constraints=tuple(readings),
    )


def merged_verdict_counters(
    readings: Sequence[VerdictReading],
    *,
    tracked_duration_ns: int,
    final: bool,
    complete: bool,
    validities: Sequence[ValidityReading] = (),
) -> dict[str, int | float]:
    """The verdict counters of several runs judged as one run (``bench-metrics merge``).

    The counts (samples judged, over the limit, good samples and their output
    tokens) are summed; the limits must be the same in every run; queries
    needed, states and goodput are decided again on the sums by the very
    arithmetic a run uses (:meth:`VerdictCounters.write`): summing those would
    mean nothing. ``validities`` (one per run, or none): the validity of the
    union, judged again on the summed queries and, for the duration, the
    union's tracked duration in Offline and the longest run's figure in Server
    (the runs issue side by side). ``ValueError`` when the runs were judged on
    different constraints or validity requirements.
    """
    if not readings:
        raise ValueError("no verdicts to merge")
    ref = [(r.key, r.limit_ns) for r in readings[0].constraints]
    for reading in readings[1:]:
        other = [(r.key, r.limit_ns) for r in reading.constraints]
        if other != ref:
            raise ValueError(f"judged on different constraints: {other} != {ref}")
    tracker = ConstraintTracker([r.constraint for r in readings[0].constraints])
    for i in range(len(ref)):
        tracker.samples[i] = sum(r.constraints[i].samples for r in readings)
        tracker.over_limit[i] = sum(r.constraints[i].over_limit for r in readings)
    tracker.good_samples = sum(r.good_samples for r in readings)
    tracker.good_output_tokens = sum(r.good_output_tokens for r in readings)
    tracker.samples_observed = sum(tracker.samples)
    requirements: Requirements | None = None
    queries, vdur = 0, None
    if validities:
        if len(validities) != len(readings):
            raise ValueError("some runs were judged on validity requirements and some not")
        first = validities[0]
        requirements = first.requirements
        for v in validities[1:]:
            if v.requirements != requirements:
                raise ValueError(
                    f"judged on different validity requirements: {v.requirements} != {requirements}"
                )
        # the readings keep no ruleset: submittable is carried over from the runs
        if first.submittable and all(v.submittable for v in validities):
            requirements = Requirements(
                requirements.scenario,
                requirements.min_duration_ns,
                requirements.min_queries,
                requirements.duration_source,
                requirements.queries_source,
                ruleset="(as recorded)",
            )
        queries = sum(v.queries for v in validities)
        if requirements.scenario == "server":
            vdur = max(v.duration_ns for v in validities)
    scratch = MetricsRegistry()
    VerdictCounters(scratch, tracker, requirements).write(
        tracked_duration_ns=tracked_duration_ns,
        final=final,
        complete=complete,
        validity_duration_ns=vdur,
        queries=queries,
    )
    return {name: scratch.counter_value(name) for name in scratch.counter_names}
