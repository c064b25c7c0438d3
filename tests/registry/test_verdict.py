"""MLPerf verdicts: rulesets, SLOs, exact constraint accounting and LoadGen's decision (SPEC §10).

* early stopping against LoadGen's reference values and a brute-force binomial sum in
  exact rationals for small cases;
* ``judge`` against the empirical percentile of the actual values, and its monotony;
* a hand-computed event stream through the real aggregator: every count, queries needed,
  state and the final verdict known in advance (in the comments);
* the synthetic demo profiles: nominal passes every ruleset, slow fails every one.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import MetricsRegistry, SessionState
from registry.aggregator import AggregatorMetrics
from registry.core.percentiles import PercentileMethod, rank_index
from registry.events import EventRecord, EventType
from registry.events.data import ErrorData
from registry.events.synthetic import SyntheticLoad
from registry.mlperf import (
    RULESETS,
    Constraint,
    ConstraintTracker,
    build_constraints,
    find_min_passing,
    judge,
    parse_slo,
    queries_needed,
)
from registry.mlperf.slo import parse_key
from registry.mlperf.verdict_counters import read_verdict, verdict_counter_names
from registry.report.summary import build_report

T = EventType
MS = 1_000_000

# -- the ruleset table ---------------------------------------------------------------


def test_rulesets_hold_loadgen_mlperf_conf_numbers() -> None:
    # mlcommons/inference loadgen/mlperf.conf @ 001712e9: <model>.Server.ttft_latency / tpot_latency
    expected = {
        "llama2-70b": (2000, 200),
        "llama2-70b-interactive": (450, 40),
        "mixtral-8x7b": (2000, 200),
        "llama3_1-405b": (6000, 175),
        "llama3_1-405b-interactive": (4500, 80),
        "llama3_1-8b": (2000, 100),
        "llama3_1-8b-interactive": (500, 30),
        "deepseek-r1": (2000, 80),
        "deepseek-r1-interactive": (1500, 15),
    }
    assert {n: (r.ttft_limit_ms, r.tpot_limit_ms) for n, r in RULESETS.items()} == expected
    assert {r.percentile for r in RULESETS.values()} == {99.0}
    ttft, tpot = build_constraints("llama2-70b")
    assert (ttft.series, ttft.limit_ns, ttft.key) == ("ttft_ns", 2000 * MS, "ttft_p99")
    assert (tpot.series, tpot.limit_ns, tpot.key) == ("tpot_ns", 200 * MS, "tpot_p99")


# -- --slo ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "series", "pct", "limit_ns", "key"),
    [
        ("ttft:p99<=500ms", "ttft_ns", 99.0, 500 * MS, "ttft_p99"),
        ("tpot:p90<=40ms", "tpot_ns", 90.0, 40 * MS, "tpot_p90"),
        ("latency:p99.9<=2.5s", "sample_latency_ns", 99.9, 2_500 * MS, "sample_latency_p99_9"),
        ("sample_latency:P50 <= 800us", "sample_latency_ns", 50.0, 800_000, "sample_latency_p50"),
        (" ttft_ns : p97.5<=.25s ", "ttft_ns", 97.5, 250 * MS, "ttft_p97_5"),
    ],
)
def test_slo_forms(text: str, series: str, pct: float, limit_ns: int, key: str) -> None:
    c = parse_slo(text)
    assert (c.series, c.percentile, c.limit_ns, c.key) == (series, pct, limit_ns, key)
    assert parse_key(c.key) == (series, pct)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ttft:p99<500ms", "expected SERIES:pP<=VALUE"),
        ("ttft:p99<=500", "expected SERIES:pP<=VALUE"),  # no unit
        ("isl:p99<=5ms", "cannot constrain"),
        ("ttft:p100<=5ms", "strictly between 0 and 100"),
        ("ttft:p0<=5ms", "strictly between 0 and 100"),
        ("ttft:p99<=0ms", "must be > 0"),
        ("ttft:p99<=0.0001us", "whole number of nanoseconds"),
        ("ttft:p99<=nanms", "expected SERIES:pP<=VALUE"),
    ],
)
def test_bad_slos_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_slo(text)


def test_two_constraints_on_one_series_and_percentile_are_refused() -> None:
    with pytest.raises(ValueError, match="two constraints on ttft p99"):
        build_constraints("llama2-70b", ["ttft:p99<=1s"])
    with pytest.raises(ValueError, match="unknown ruleset"):
        build_constraints("llama-9000")
    assert len(build_constraints("llama2-70b", ["ttft:p90<=1s", "latency:p99<=5s"])) == 4


# -- early stopping ------------------------------------------------------------------


@pytest.mark.parametrize(("t", "total"), [(0, 459), (1, 662), (2, 838), (10, 2010)])
def test_loadgen_reference_values_for_p99(t: int, total: int) -> None:
    # SPEC §10: total queries h(t) + t that LoadGen needs with t overlatency queries at p99
    assert find_min_passing(t, 0.99) + t == total
    assert queries_needed(0, t, 0.99) == total
    assert queries_needed(total, t, 0.99) == 0 and queries_needed(total - 1, t, 0.99) == 1
    assert judge(total, t, 99.0, final=True).state == "pass"
    assert judge(total - 1, t, 99.0, final=True).state == "fail"


def _binomial_tail(h: int, t: int, p: Fraction) -> Fraction:
    """P(at most t of h + t queries are over the bound) when each is over with 1 - p."""
    n = h + t
    return sum((Fraction(math.comb(n, k)) * (1 - p) ** k * p ** (n - k) for k in range(t + 1)),
               Fraction(0))  # fmt: skip


def _brute_min_passing(t: int, p: Fraction, confidence: Fraction = Fraction(99, 100)) -> int:
    h = 1
    while _binomial_tail(h, t, p) >= 1 - confidence:
        h += 1
    return h


@pytest.mark.parametrize("p", ["0.5", "0.75", "0.8", "0.9", "0.95"])
@pytest.mark.parametrize("t", [0, 1, 2, 3, 5])
def test_find_min_passing_equals_a_brute_force_binomial_sum(p: str, t: int) -> None:
    # I_p(h, t + 1) is that binomial tail: computed here exactly, in rationals
    assert find_min_passing(t, float(p)) == _brute_min_passing(t, Fraction(p))


def test_p50_small_cases_by_hand() -> None:
    # 0.5**h < 0.01 first at h = 7; (h + 2) / 2**(h + 1) < 0.01 first at h = 10
    assert find_min_passing(0, 0.5) == 7
    assert find_min_passing(1, 0.5) == 10


# -- the decision ------------------------------------------------------------------------

PERCENTILES = st.sampled_from([50.0, 75.0, 90.0, 95.0, 97.0, 99.0, 99.9])


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.integers(1, 1_000), min_size=1, max_size=400),
    limit=st.integers(1, 1_000),
    pct=PERCENTILES,
)
def test_percentile_check_from_counts_equals_loadgen_on_the_values(
    values: list[int], limit: int, pct: float
) -> None:
    over = sum(1 for v in values if v > limit)
    j = judge(len(values), over, pct, final=True)
    ordered = sorted(values)
    # LoadGen: sorted[n * p] (the loadgen method) must not exceed the limit
    loadgen_value = ordered[rank_index(PercentileMethod.LOADGEN, pct, len(values))]
    assert j.percentile_within_limit == (loadgen_value <= limit)
    assert j.queries_needed == max(0, find_min_passing(over, pct / 100) + over - len(values))
    assert (j.state == "pass") == (j.enough_queries and j.percentile_within_limit)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 3_000), t=st.integers(0, 60), pct=PERCENTILES, final=st.booleans())
def test_more_violations_never_help_and_more_good_samples_never_hurt(
    n: int, t: int, pct: float, final: bool
) -> None:
    t = min(t, n)
    rank = {"fail": 0, "failing": 0, "pending": 1, "on_track": 2, "pass": 2}
    j = judge(n, t, pct, final=final)
    if t < n:
        worse = judge(n, t + 1, pct, final=final)
        assert rank[worse.state] <= rank[j.state]
    better = judge(n + 1, t, pct, final=final)
    assert rank[better.state] >= rank[j.state]
    assert j.min_queries == find_min_passing(t, pct / 100) + t


def test_states_are_defined_as_documented() -> None:
    assert judge(0, 0, 99.0, final=False).state == "pending"
    assert judge(0, 0, 99.0, final=True).state == "fail"  # no sample at all
    assert judge(100, 0, 99.0, final=False).state == "pending"  # within, not enough yet
    assert judge(459, 0, 99.0, final=False).state == "on_track"
    assert judge(100, 2, 99.0, final=False).state == "failing"  # p99 over the limit now
    j = judge(1000, 11, 99.0, final=False)  # p99 over: at most 9 of 1000 may be
    assert (j.state, j.max_over_limit) == ("failing", 9)


# -- accounting --------------------------------------------------------------------------


def test_tracker_counts_exactly_and_skips_missing_values() -> None:
    tracker = ConstraintTracker(build_constraints(None, ["ttft:p50<=100ms", "tpot:p50<=10ms"]))
    tracker.observe(
        failed=False, ttft_ns=100 * MS, tpot_ns=10.0 * MS, latency_ns=1, output_tokens=3
    )
    tracker.observe(failed=False, ttft_ns=100 * MS + 1, tpot_ns=None, latency_ns=1, output_tokens=1)
    tracker.observe(failed=True, ttft_ns=5 * MS, tpot_ns=None, latency_ns=1, output_tokens=None)
    tracker.observe(failed=False, ttft_ns=None, tpot_ns=10.5 * MS, latency_ns=1, output_tokens=7)
    # at the limit is within; 1 ns above is over; None skips only that constraint
    assert tracker.samples == [3, 2] and tracker.over_limit == [1, 1]
    assert tracker.good_samples == 1 and tracker.good_output_tokens == 3
    assert tracker.samples_observed == 4


def _stream(samples: list[tuple[int | None, int, int | None, bool]]) -> list[EventRecord]:
    """Events of ``samples`` = (ttft ms or None, latency ms, output tokens or None, failed)."""
    events = [
        EventRecord(T.SESSION_STARTED, 0),
        EventRecord(T.SESSION_START_PERFORMANCE_TRACKING, 0),
    ]
    for i, (ttft, latency, tokens, failed) in enumerate(samples):
        uid, t0 = f"s{i + 1}", (1 + i) * 10_000 * MS
        events.append(EventRecord(T.SAMPLE_ISSUED, t0, uid))
        if ttft is not None:
            events.append(EventRecord(T.SAMPLE_RECV_FIRST, t0 + ttft * MS, uid))
        if failed:
            err = ErrorData("HTTPError", "503")
            events.append(EventRecord(T.ERROR_CLIENT, t0 + latency * MS, uid, data=err))
            events.append(EventRecord(T.SAMPLE_COMPLETE, t0 + latency * MS, uid))
        else:
            kw = {} if tokens is None else {"output_tokens": tokens}
            events.append(EventRecord(T.SAMPLE_COMPLETE, t0 + latency * MS, uid, **kw))
    return events


# (ttft ms, latency ms, output tokens, failed); TPOT = (latency - ttft) / (tokens - 1)
HAND_SAMPLES: list[tuple[int | None, int, int | None, bool]] = [
    (50, 150, 11, False),  # s1: TPOT 10 ms, exactly at the limit: within. good
    (120, 300, 19, False),  # s2: TTFT over 100 ms; TPOT 10 ms. not good
    (80, 1200, 12, False),  # s3: latency over 1 s; TPOT 101.8 ms over. not good
    (60, 400, 1, False),  # s4: one token, no TPOT: judged on TTFT and latency. good
    (70, 200, None, True),  # s5: failed: TTFT and latency within, never good
    (None, 250, 5, False),  # s6: no first chunk: no TTFT, no TPOT. good
    *[(40, 100, 11, False)] * 8,  # s7..s14: TPOT 6 ms. good
]
HAND_SLOS = ["ttft:p50<=100ms", "latency:p50<=1s", "tpot:p50<=10ms"]


def _aggregate(samples: list[tuple[int | None, int, int | None, bool]]) -> tuple[
    MetricsRegistry, AggregatorMetrics
]:  # fmt: skip
    reg = MetricsRegistry()
    metrics = AggregatorMetrics(reg, streaming=True, constraints=build_constraints(None, HAND_SLOS))
    metrics.handle_many(_stream(samples))
    return reg, metrics


def _states(reg: MetricsRegistry, state: SessionState = SessionState.LIVE) -> dict[str, tuple]:
    reading = read_verdict(reg.build_snapshot(state=state, n_pending_tasks=0).counters)
    assert reading is not None
    return {
        c.key: (c.samples, c.over_limit, c.queries_needed, c.state) for c in reading.constraints
    } | {"run": (reading.state, reading.good_samples, reading.good_output_tokens)}


def test_hand_computed_stream_live_and_final() -> None:
    # p50: h(0) = 7, h(1) = 10 (test_p50_small_cases_by_hand)
    # after s1, s2: TTFT n = 2, t = 1; LoadGen's p50 index floor(2 * 0.5) = 1 is over: failing
    reg, _ = _aggregate(HAND_SAMPLES[:2])
    assert _states(reg)["ttft_p50"] == (2, 1, 11 - 2, "failing")
    assert _states(reg)["run"] == ("failing", 1, 11)

    # after s1..s6: TTFT n 5 t 1 (needs 11 - 5 = 6 more; index 2, at most 2 may be over),
    # latency n 6 t 1 (needs 5), TPOT n 3 (s1, s2, s3) t 1 (needs 8; index 1, at most 1)
    reg, _ = _aggregate(HAND_SAMPLES[:6])
    got = _states(reg)
    assert got["ttft_p50"] == (5, 1, 6, "pending")
    assert got["sample_latency_p50"] == (6, 1, 5, "pending")
    assert got["tpot_p50"] == (3, 1, 8, "pending")
    assert got["run"] == ("pending", 3, 11 + 1 + 5)  # s1, s4, s6

    # all 14: TTFT n 13 t 1, latency n 14 t 1, TPOT n 11 t 1: each has its 11 and its p50
    reg, metrics = _aggregate(HAND_SAMPLES)
    got = _states(reg)
    assert got["ttft_p50"] == (13, 1, 0, "on_track")
    assert got["sample_latency_p50"] == (14, 1, 0, "on_track")
    assert got["tpot_p50"] == (11, 1, 0, "on_track")
    assert got["run"] == ("on_track", 11, 11 + 1 + 5 + 8 * 11)

    metrics.finalize_verdict(complete=True)
    final = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    assert _states(reg, SessionState.COMPLETE)["run"][0] == "pass"
    report = build_report(final)
    verdict = report["verdict"]
    assert verdict["decision"] == "pass" and verdict["exact"] is True
    assert [c["state"] for c in verdict["constraints"]] == ["pass"] * 3
    assert [c["samples"] for c in verdict["constraints"]] == [13, 14, 11]
    assert verdict["good_samples"] == 11 and verdict["good_output_tokens"] == 105
    # goodput over the tracked duration: start of tracking (0) to the last completion
    last_completion_s = (14 * 10_000 + 100) / 1000
    assert verdict["goodput"] == pytest.approx(11 / last_completion_s)
    assert len(verdict["reasons"]) == 3 and all(r.startswith("PASS:") for r in verdict["reasons"])


def test_an_interrupted_run_never_passes() -> None:
    reg, metrics = _aggregate(HAND_SAMPLES)
    metrics.finalize_verdict(complete=False)
    snap = reg.build_snapshot(state=SessionState.INTERRUPTED, n_pending_tasks=0)
    verdict = build_report(snap)["verdict"]
    assert verdict["decision"] == "fail" and verdict["state"] == "fail"
    assert [c["state"] for c in verdict["constraints"]] == ["pass"] * 3  # the counts would pass
    assert verdict["reasons"][0].startswith("INCOMPLETE:")


def test_verdict_counters_follow_the_aggregators_own() -> None:
    reg, _ = _aggregate(HAND_SAMPLES[:1])
    names = list(reg.counter_names)
    verdict = list(verdict_counter_names(build_constraints(None, HAND_SLOS)))
    assert names[-len(verdict) :] == verdict  # appended after every existing counter
    assert names.index("session_errors") < names.index("good_samples")


def test_ttft_and_tpot_constraints_need_streaming() -> None:
    with pytest.raises(ValueError, match="needs streaming"):
        AggregatorMetrics(
            MetricsRegistry(), streaming=False, constraints=build_constraints("llama2-70b")
        )
    AggregatorMetrics(
        MetricsRegistry(), streaming=False, constraints=[parse_slo("latency:p99<=1s")]
    )


# -- the demo's profiles -------------------------------------------------------------------


def _judge_load(load: SyntheticLoad, ruleset: str) -> str:
    reg = MetricsRegistry()
    metrics = AggregatorMetrics(reg, streaming=True, constraints=build_constraints(ruleset))
    metrics.handle_many(list(load.events(0)))
    metrics.finalize_verdict(complete=True)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    reading = read_verdict(snap.counters)
    assert reading is not None
    return reading.state


@pytest.mark.parametrize("ruleset", sorted(RULESETS))
def test_nominal_profile_passes_and_slow_fails_every_ruleset(ruleset: str) -> None:
    from exporter.cli.commands.demo import PROFILES

    nominal = SyntheticLoad(qps=200, duration_s=4, seed=5, **PROFILES["nominal"])
    slow = SyntheticLoad(qps=200, duration_s=4, seed=5, **PROFILES["slow"])
    assert _judge_load(nominal, ruleset) == "pass"
    assert _judge_load(slow, ruleset) == "fail"


def test_constraint_describes_itself() -> None:
    assert Constraint("ttft_ns", 99.0, 450 * MS).describe() == "ttft p99 <= 450 ms"
    assert Constraint("sample_latency_ns", 99.9, 20_000 * MS).describe() == (
        "sample_latency p99.9 <= 20 s"
    )
    with pytest.raises(ValueError):
        Constraint("isl", 99.0, 1)


def test_capture_hooks_run_before_the_counters_are_copied(caplog: pytest.LogCaptureFixture) -> None:
    reg = MetricsRegistry()
    reg.register_counter("derived", settable=True)
    calls: list[int] = []

    def hook() -> None:
        calls.append(1)
        reg.set_counter("derived", len(calls))

    def broken() -> None:
        raise RuntimeError("boom")

    reg.add_capture_hook(hook)
    reg.add_capture_hook(broken)
    with caplog.at_level("ERROR"):
        first = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
        second = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    assert first.counters["derived"] == 1 and second.counters["derived"] == 2
    assert any("capture hook failed" in r.getMessage() for r in caplog.records)


def test_the_verdict_in_a_snapshot_is_current_as_of_its_capture() -> None:
    # judged at capture, not per batch: a sample told to the tracker between two
    # captures is in the second one even without another batch
    reg, metrics = _aggregate(HAND_SAMPLES[:1])
    before = read_verdict(reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters)
    metrics.judge_sample(failed=False, ttft_ns=MS, tpot_ns=None, latency_ns=MS, output_tokens=2)
    after = read_verdict(reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters)
    assert before is not None and after is not None
    assert [c.samples for c in after.constraints] == [
        c.samples + 1 for c in before.constraints[:2]
    ] + [before.constraints[2].samples]  # TTFT and latency judged; no TPOT value
    assert after.good_samples == before.good_samples + 1
