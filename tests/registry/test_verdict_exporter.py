"""The verdict in Prometheus, the live view and the bridge (SPEC §8, §10).

A real aggregator registry judged on constraints feeds the real collector; the
exposition goes through prometheus_client's strict OpenMetrics parser and promtool.
"""

from __future__ import annotations

import re

import pytest
from rich.console import Console
from test_verdict import HAND_SAMPLES, HAND_SLOS, _aggregate, _stream

from exporter.prometheus.buckets import SERIES_BOUNDS, parse_bucket_spec
from exporter.prometheus.collector import SnapshotCollector
from exporter.views.live_view import progress_line, render_live
from registry import MetricsRegistry, SessionState
from registry.aggregator import AggregatorMetrics
from registry.mlperf import build_constraints
from registry.mlperf.requirements import requirements_for
from tests.support.exporter_support import (
    PROMTOOL,
    find,
    openmetrics_exposition,
    parse_strict,
    promtool_findings,
    samples,
    text_exposition,
)

MS = 1_000_000


def _collector(snap, **kw) -> SnapshotCollector:
    c = SnapshotCollector(labels={"run_id": "r1", "model": "m"}, **kw)
    c.update(snap)
    return c


def _judged_snapshot(state: SessionState = SessionState.LIVE):
    reg, metrics = _aggregate(HAND_SAMPLES)
    if state.is_terminal:
        metrics.finalize_verdict(complete=True)
    return reg.build_snapshot(state=state, n_pending_tasks=0)


def test_verdict_families_carry_the_exact_counts() -> None:
    text = openmetrics_exposition(_collector(_judged_snapshot()))
    parse_strict(text)  # strict OpenMetrics: raises on any violation
    s = samples(text)
    ttft = {"constraint": "ttft_p50", "series": "ttft", "run_id": "r1", "model": "m"}
    assert find(s, "bench_constraint_samples_total", **ttft)[0].value == 13
    assert find(s, "bench_constraint_violations_total", **ttft)[0].value == 1
    assert find(s, "bench_constraint_queries_needed", **ttft)[0].value == 0
    assert find(s, "bench_constraint_limit_seconds", **ttft)[0].value == 0.1
    assert find(s, "bench_constraint_target_ratio", **ttft)[0].value == 0.5
    states = {
        x.labels["bench_constraint_state"]: x.value
        for x in find(s, "bench_constraint_state", **ttft)
    }
    assert states == {"pending": 0, "on_track": 1, "failing": 0, "pass": 0, "fail": 0}
    run_state = {x.labels["bench_verdict_state"]: x.value for x in find(s, "bench_verdict_state")}
    assert run_state["on_track"] == 1 and sum(run_state.values()) == 1
    assert find(s, "bench_good_samples_total")[0].value == 11
    assert find(s, "bench_good_output_tokens_total")[0].value == 105
    assert find(s, "bench_goodput_samples_per_second")[0].value > 0
    # the verdict counters are not exported a second time one by one
    assert not [x for x in s if x.name.startswith("bench_constraint_ttft_p50")]
    assert not find(s, "bench_verdict_state_total")


def test_final_states_are_pass_or_fail() -> None:
    s = samples(openmetrics_exposition(_collector(_judged_snapshot(SessionState.COMPLETE))))
    ones = {x.labels["bench_verdict_state"] for x in find(s, "bench_verdict_state") if x.value}
    assert ones == {"pass"}


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_the_verdict_families() -> None:
    rc, findings = promtool_findings(text_exposition(_collector(_judged_snapshot())))
    assert rc == 0 and findings.strip() == "", findings


def test_every_limit_is_exactly_a_bucket_bound_counting_the_samples_within() -> None:
    reg = MetricsRegistry()
    metrics = AggregatorMetrics(
        reg, streaming=True, constraints=build_constraints("llama2-70b-interactive")
    )
    assert 450 * MS not in SERIES_BOUNDS["ttft_ns"] and 40 * MS not in SERIES_BOUNDS["tpot_ns"]
    # values well away from 450 ms (far beyond HDR precision) on both sides
    ttfts = [100 * MS] * 70 + [449 * MS] * 20 + [452 * MS] * 6 + [900 * MS] * 4
    reg.record_many("ttft_ns", ttfts)
    del metrics
    s = samples(
        openmetrics_exposition(
            _collector(reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0))
        )
    )
    buckets = {x.labels["le"]: x.value for x in find(s, "bench_ttft_seconds_bucket")}
    assert buckets["0.45"] == 90 == sum(1 for v in ttfts if v <= 450 * MS)
    tpot = {x.labels["le"] for x in find(s, "bench_tpot_seconds_bucket")}
    assert "0.04" in tpot
    les = [float(le) for le in buckets if le != "+Inf"]
    assert les == sorted(les) and len(les) == len(SERIES_BOUNDS["ttft_ns"]) + 1


def test_buckets_option_replaces_a_series_table() -> None:
    series, bounds = parse_bucket_spec("ttft=0.01,50ms,0.1,1")
    assert series == "ttft_ns" and bounds == (10 * MS, 50 * MS, 100 * MS, 1000 * MS)
    assert parse_bucket_spec("osl=100,10,1000") == ("osl", (10, 100, 1000))
    snap = _judged_snapshot()
    s = samples(openmetrics_exposition(_collector(snap, buckets={series: bounds})))
    les = [x.labels["le"] for x in find(s, "bench_ttft_seconds_bucket")]
    # the constraint limit (100 ms, already there) stays a bound; +Inf closes
    assert les == ["0.01", "0.05", "0.1", "1.0", "+Inf"]
    for bad in ("ttft", "ttft=", "ttft=a", "ttft=-1", "ttft=1e-12", "isl=1.5"):
        with pytest.raises(ValueError):
            parse_bucket_spec(bad)


def test_a_run_label_may_not_reuse_a_verdict_label() -> None:
    for name in ("constraint", "series", "bench_verdict_state", "bench_constraint_state"):
        with pytest.raises(ValueError, match="reserved"):
            SnapshotCollector(labels={"run_id": "r", name: "x"})


def test_live_view_shows_the_verdict_and_the_progress_line_its_state() -> None:
    snap = _judged_snapshot()
    console = Console(width=110, record=True, color_system=None)
    console.print(render_live(snap))
    text = console.export_text()
    assert "Verdict  ON TRACK" in text
    row = next(line for line in text.splitlines() if "ttft p50 <= 100 ms" in line)
    assert re.search(r"ttft p50 <= 100 ms\s+13\s+1\s+92\.31%\s+0\s+ON TRACK", row), row
    assert "Good samples 11" in text
    assert "constraint_ttft" not in text  # not listed again under "Other counters"
    assert "verdict on_track" in progress_line(snap)
    early, _ = _aggregate(HAND_SAMPLES[:2])
    line = progress_line(early.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0))
    assert "verdict failing (needs 9 more)" in line  # TTFT: 11 - 2


def _validity_snapshot(state: SessionState, requirements):  # type: ignore[no-untyped-def]
    reg = MetricsRegistry()
    metrics = AggregatorMetrics(
        reg,
        streaming=True,
        constraints=build_constraints(None, HAND_SLOS),
        requirements=requirements,
    )
    metrics.handle_many(_stream(HAND_SAMPLES))
    if state.is_terminal:
        metrics.finalize_verdict(complete=True)
    return reg.build_snapshot(state=state, n_pending_tasks=0)


def test_validity_families_live_and_the_invalid_state() -> None:
    req = requirements_for("llama2-70b", min_queries=10)
    live = samples(openmetrics_exposition(_collector(_validity_snapshot(SessionState.LIVE, req))))
    states = {x.labels["bench_validity_state"]: x.value for x in find(live, "bench_validity_state")}
    assert states == {"pending": 0, "on_track": 1, "failing": 0, "valid": 0, "invalid": 0}
    reasons = {x.labels["reason"]: x.value for x in find(live, "bench_validity_reason")}
    assert reasons == {
        "performance_constraints": 1.0,
        "min_duration": 0.0,
        "min_queries": 1.0,
        "early_stopping": 1.0,
    }
    assert find(live, "bench_validity_min_duration_seconds")[0].value == 600.0
    needed = find(live, "bench_validity_duration_needed_seconds")[0].value
    duration = find(live, "bench_validity_duration_seconds")[0].value
    assert needed == pytest.approx(600.0 - duration) and needed > 0
    assert find(live, "bench_validity_queries")[0].value == 14
    assert find(live, "bench_validity_min_queries")[0].value == 10
    assert find(live, "bench_validity_submittable")[0].value == 0.0
    assert find(live, "bench_validity_eta_seconds")[0].value == pytest.approx(needed)
    # final: the latency constraints pass, min duration does not: the run's stateset says invalid
    final_snap = _validity_snapshot(SessionState.COMPLETE, req)
    text = openmetrics_exposition(_collector(final_snap))
    parse_strict(text)
    final = samples(text)
    run_state = {
        x.labels["bench_verdict_state"]: x.value for x in find(final, "bench_verdict_state")
    }
    assert run_state["invalid"] == 1 and sum(run_state.values()) == 1
    vstate = {
        x.labels["bench_validity_state"]: x.value for x in find(final, "bench_validity_state")
    }
    assert vstate["invalid"] == 1 and sum(vstate.values()) == 1
    # no validity counter is exported a second time one by one
    assert not [x for x in final if x.name.startswith("bench_validity_reason_")]
    if PROMTOOL is not None:
        rc, out = promtool_findings(text_exposition(_collector(final_snap)))
        assert rc == 0, out


def test_an_offline_run_exports_no_performance_constraint_reason() -> None:
    req = requirements_for("llama2-70b", "offline", min_duration_ns=0, min_queries=5)
    reg = MetricsRegistry()
    metrics = AggregatorMetrics(reg, streaming=True, requirements=req)
    metrics.handle_many(_stream(HAND_SAMPLES))
    metrics.finalize_verdict(complete=True)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    s = samples(openmetrics_exposition(_collector(snap)))
    reasons = {x.labels["reason"] for x in find(s, "bench_validity_reason")}
    assert reasons == {"min_duration", "min_queries", "early_stopping"}
    run_state = {x.labels["bench_verdict_state"]: x.value for x in find(s, "bench_verdict_state")}
    assert run_state["pass"] == 1
