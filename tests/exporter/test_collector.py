"""The snapshot → Prometheus mapping of SnapshotCollector (SPEC §8, the catalogue)."""

from __future__ import annotations

import itertools
import math

import msgspec
import numpy as np
import pytest

from exporter.prometheus.buckets import SERIES_BOUNDS, bounds_for, bucket_bounds, cumulative_buckets
from exporter.prometheus.collector import SnapshotCollector
from exporter.prometheus.naming import quantile_label
from registry import (
    DEFAULT_PERCENTILES,
    MetricsRegistry,
    SeriesStat,
    SessionState,
    SnapshotCodec,
    percentile_key,
)
from tests.support.exporter_support import (
    REASONS,
    find,
    openmetrics_exposition,
    parse_strict,
    samples,
    spec_registry,
    spec_snapshot,
)

RUN = {"run_id": "run-1", "model": "llama-3-8b", "scenario": "offline", "site": "lab"}

EXPECTED_FAMILIES = {
    # OpenMetrics family name: (type, unit)
    "bench_run": ("info", ""),
    "bench_session_state": ("stateset", ""),
    "bench_pending_tasks": ("gauge", ""),
    "bench_samples_issued": ("counter", ""),
    "bench_samples_completed": ("counter", ""),
    "bench_samples_failed": ("counter", ""),
    "bench_finish_reason": ("counter", ""),
    "bench_output_tokens": ("counter", ""),
    "bench_tracked_duration_seconds": ("gauge", "seconds"),
    "bench_total_duration_seconds": ("gauge", "seconds"),
    "bench_ttft_seconds": ("histogram", "seconds"),
    "bench_ttft_quantiles_seconds": ("summary", "seconds"),
    "bench_tpot_seconds": ("histogram", "seconds"),
    "bench_tpot_quantiles_seconds": ("summary", "seconds"),
    "bench_sample_latency_seconds": ("histogram", "seconds"),
    "bench_sample_latency_quantiles_seconds": ("summary", "seconds"),
    "bench_chunk_delta_seconds": ("histogram", "seconds"),
    "bench_chunk_delta_quantiles_seconds": ("summary", "seconds"),
    "bench_isl_tokens": ("histogram", "tokens"),
    "bench_isl_quantiles_tokens": ("summary", "tokens"),
    "bench_osl_tokens": ("histogram", "tokens"),
    "bench_osl_quantiles_tokens": ("summary", "tokens"),
    "bench_exporter_last_snapshot_age_seconds": ("gauge", "seconds"),
    "bench_exporter_snapshot_sequence": ("gauge", ""),
    "bench_exporter_snapshots_received": ("counter", ""),
    "bench_exporter_decode_errors": ("counter", ""),
    "bench_exporter_dropped": ("counter", ""),
    "bench_exporter_up": ("gauge", ""),
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def served(snapshot, **kwargs) -> str:
    c = SnapshotCollector(labels=kwargs.pop("labels", RUN), **kwargs)
    c.update(snapshot)
    return openmetrics_exposition(c)


def test_every_catalogue_family_has_its_type_and_unit() -> None:
    fams = parse_strict(served(spec_snapshot()))
    got = {name: (f.type, f.unit) for name, f in fams.items()}
    assert got == EXPECTED_FAMILIES
    assert all(f.documentation for f in fams.values())


def test_related_counters_share_a_family_with_a_label() -> None:
    s = samples(served(spec_snapshot(n=100)))
    issued = {x.labels["window"]: x.value for x in find(s, "bench_samples_issued_total")}
    assert issued == {"all": 105.0, "tracked": 100.0}
    failed = {x.labels["window"]: x.value for x in find(s, "bench_samples_failed_total")}
    assert failed == {"all": 3.0, "tracked": 3.0}
    reasons = {x.labels["reason"]: x.value for x in find(s, "bench_finish_reason_total")}
    assert set(reasons) == set(REASONS)
    assert reasons["stop"] == 90.0 and reasons["length"] == 7.0 and reasons["other"] == 0.0
    (tokens,) = find(s, "bench_output_tokens_total")
    assert tokens.labels["window"] == "tracked" and tokens.value == 12_800.0


def test_settable_durations_are_gauges_in_seconds() -> None:
    s = samples(served(spec_snapshot(n=10)))
    assert find(s, "bench_tracked_duration_seconds")[0].value == 12.5
    assert find(s, "bench_total_duration_seconds")[0].value == 13.0


def test_every_sample_carries_the_run_labels() -> None:
    s = samples(served(spec_snapshot(n=10)))
    assert s
    for sample in s:
        assert sample.labels["run_id"] == "run-1"
        assert sample.labels["site"] == "lab"
        assert sample.labels["model"] == "llama-3-8b"


def test_run_info_has_model_scenario_version() -> None:
    s = samples(served(spec_snapshot(n=1), labels={"run_id": "r"}))
    (info,) = find(s, "bench_run_info")
    assert info.value == 1.0
    assert info.labels["model"] == "" and info.labels["scenario"] == ""
    assert info.labels["version"] and info.labels["run_id"] == "r"
    s = samples(served(spec_snapshot(n=1)))
    (info,) = find(s, "bench_run_info")
    assert info.labels["model"] == "llama-3-8b" and info.labels["scenario"] == "offline"


def test_summary_quantiles_are_the_grid_in_seconds() -> None:
    snap = spec_snapshot(n=500)
    ttft = snap.series["ttft_ns"]
    s = samples(served(snap))
    quantiles = {x.labels["quantile"]: x.value for x in find(s, "bench_ttft_quantiles_seconds")}
    assert set(quantiles) == {quantile_label(percentile_key(p)) for p in DEFAULT_PERCENTILES}
    assert {"0.999", "0.99", "0.5", "0.01"} <= set(quantiles)
    for p in DEFAULT_PERCENTILES:
        assert quantiles[quantile_label(percentile_key(p))] == ttft.percentile(p) / 1e9
    (total,) = find(s, "bench_ttft_quantiles_seconds_sum")
    (count,) = find(s, "bench_ttft_quantiles_seconds_count")
    assert total.value == pytest.approx(ttft.total / 1e9, rel=1e-12)
    assert count.value == 500
    isl = {x.labels["quantile"]: x.value for x in find(s, "bench_isl_quantiles_tokens")}
    assert isl["0.5"] == snap.series["isl"].percentile(50)


def test_terminal_snapshot_serves_the_exact_values() -> None:
    reg = MetricsRegistry()
    reg.register_series("ttft_ns", hdr_low=1_000, hdr_high=10**12)
    values = [1_234_567, 2_345_678, 3_456_789, 9_999_999]
    reg.record_many("ttft_ns", values)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    s = samples(served(snap))
    (p50,) = find(s, "bench_ttft_quantiles_seconds", quantile="0.5")
    assert p50.value == 2_345_678 / 1e9  # nearest rank 2 of 4, exact (not HDR-rounded)
    (p999,) = find(s, "bench_ttft_quantiles_seconds", quantile="0.999")
    assert p999.value == 0.009999999


def _bucket_map(s, name: str) -> dict[str, float]:
    return {x.labels["le"]: x.value for x in find(s, name + "_bucket")}


def test_histogram_buckets_are_cumulative_exact_and_end_with_inf() -> None:
    reg = MetricsRegistry()
    reg.register_series("ttft_ns", hdr_low=1_000, hdr_high=10**12)
    # away from the bounds by far more than HDR precision, and exactly on bounds
    values = [1_500_000] * 3 + [2_000_000] * 2 + [3_000_000, 5_000_000, 7_000_000, 4 * 10**9]
    reg.record_many("ttft_ns", values)
    snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    s = samples(served(snap))
    buckets = _bucket_map(s, "bench_ttft_seconds")
    assert list(buckets)[-1] == "+Inf"
    assert buckets["+Inf"] == len(values)
    assert find(s, "bench_ttft_seconds_count")[0].value == len(values)
    assert find(s, "bench_ttft_seconds_sum")[0].value == pytest.approx(sum(values) / 1e9)
    finite = [(float(le), v) for le, v in buckets.items() if le != "+Inf"]
    assert [le for le, _ in finite] == sorted(le for le, _ in finite)
    counts = [v for _, v in finite]
    assert counts == sorted(counts)  # cumulative
    for le, v in finite:
        assert v == sum(1 for x in values if x / 1e9 <= le), le
    assert buckets["0.002"] == 5 and buckets["0.0051"] == 7 and buckets["0.001"] == 0


def test_unknown_series_get_1_2_5_bounds_over_their_hdr_range() -> None:
    assert bucket_bounds(1_000, 10_000) == (1_000, 2_000, 5_000, 10_000)
    assert bucket_bounds(1, 30) == (1, 2, 5, 10, 20)
    assert bucket_bounds(21, 42) == (21, 42)  # too narrow for a 1-2-5 step
    assert bounds_for("x", 1_000, 10_000) == (1_000, 2_000, 5_000, 10_000)


def test_latency_bounds_are_a_fixed_e24_table_whatever_the_hdr_range() -> None:
    ttft = SERIES_BOUNDS["ttft_ns"]
    assert ttft[0] == 1_000_000 and ttft[-1] == 100 * 10**9 and len(ttft) == 121
    ratios = [b / a for a, b in itertools.pairwise(ttft)]
    assert max(ratios) < 1.16  # steps of 4-15 %: histogram_quantile stays close
    assert bounds_for("ttft_ns", 1, 10**6) == bounds_for("ttft_ns", 1_000, 3_600 * 10**9) == ttft
    # every constraint limit becomes a bound, even off the table
    assert 450_000_000 not in ttft
    assert 450_000_000 in bounds_for("ttft_ns", 1, 10**12, (450_000_000,))
    assert bounds_for("ttft_ns", 1, 10**12, (), (5, 10)) == (5, 10)


def test_bounds_are_fixed_across_scrapes() -> None:
    c = SnapshotCollector(labels={"run_id": "r"})
    les = []
    for n, seed_scale in ((10, 1), (5_000, 40)):
        reg = spec_registry()
        reg.record_many("ttft_ns", np.arange(1, n + 1) * 10_000 * seed_scale)
        c.update(reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0))
        les.append(list(_bucket_map(samples(openmetrics_exposition(c)), "bench_ttft_seconds")))
    assert les[0] == les[1]
    assert les[0][0] == "0.001" and les[0][-2] == "100.0" and les[0][-1] == "+Inf"


def test_empty_series_has_nan_quantiles_and_zero_count() -> None:
    s = samples(served(spec_snapshot(n=0)))
    qs = find(s, "bench_ttft_quantiles_seconds")
    assert len(qs) == len(DEFAULT_PERCENTILES)
    assert all(math.isnan(q.value) for q in qs)
    assert find(s, "bench_ttft_quantiles_seconds_count")[0].value == 0
    assert find(s, "bench_ttft_quantiles_seconds_sum")[0].value == 0
    buckets = _bucket_map(s, "bench_ttft_seconds")
    assert buckets and set(buckets.values()) == {0.0}
    assert find(s, "bench_ttft_seconds_count")[0].value == 0


def _without_hdr(snapshot):
    """What an mlcommons/endpoints frame looks like: series arrays end after ``histogram``."""
    raw = msgspec.msgpack.decode(SnapshotCodec().encode(snapshot)[1])
    for m in raw[4]:
        if m[0] == "series":
            del m[9:]
    return SnapshotCodec().decode(msgspec.msgpack.encode(raw))


def test_frames_without_hdr_still_give_the_summary() -> None:
    snap = _without_hdr(spec_snapshot(n=50))
    assert snap.series["ttft_ns"].hdr is None
    fams = parse_strict(served(snap))
    assert "bench_ttft_quantiles_seconds" in fams
    assert "bench_ttft_seconds" not in fams
    (count,) = find(
        fams["bench_ttft_quantiles_seconds"].samples, "bench_ttft_quantiles_seconds_count"
    )
    assert count.value == 50


def test_corrupt_hdr_drops_only_the_histogram(caplog: pytest.LogCaptureFixture) -> None:
    snap = spec_snapshot(n=50)
    metrics = [
        msgspec.structs.replace(m, hdr=b"\x1c\x84\x93\x14garbage")
        if isinstance(m, SeriesStat) and m.name == "ttft_ns"
        else m
        for m in snap.metrics
    ]
    bad = msgspec.structs.replace(snap, metrics=metrics)
    c = SnapshotCollector(labels={"run_id": "r"})
    c.update(bad)
    for _ in range(3):
        fams = parse_strict(openmetrics_exposition(c))
    assert "bench_ttft_seconds" not in fams and "bench_ttft_quantiles_seconds" in fams
    assert "bench_isl_tokens" in fams
    assert sum("ttft_ns" in r.getMessage() for r in caplog.records) == 1  # warned once


def test_hdr_count_mismatch_drops_the_histogram() -> None:
    snap = spec_snapshot(n=50)
    metrics = [
        msgspec.structs.replace(m, count=m.count + 1) if isinstance(m, SeriesStat) else m
        for m in snap.metrics
    ]
    fams = parse_strict(served(msgspec.structs.replace(snap, metrics=metrics)))
    assert "bench_ttft_seconds" not in fams and "bench_ttft_quantiles_seconds" in fams


@pytest.mark.parametrize(
    "run_id",
    ['quote"d', "back\\slash", "new\nline", "ünïcødé ✓ 日本", 'all"\\\n\t{},=', ""],
)
def test_hostile_run_ids_round_trip(run_id: str) -> None:
    s = samples(served(spec_snapshot(n=5), labels={"run_id": run_id, "note": 'x"\\\ny'}))
    assert s
    assert {x.labels["run_id"] for x in s} == {run_id}
    assert {x.labels["note"] for x in s} == {'x"\\\ny'}


def test_session_state_is_a_one_hot_stateset_and_pending_a_gauge() -> None:
    for state in SessionState:
        s = samples(served(spec_snapshot(state=state, n=3, pending=4)))
        states = {x.labels["bench_session_state"]: x.value for x in find(s, "bench_session_state")}
        assert states == {st.value: float(st is state) for st in SessionState}
        assert find(s, "bench_pending_tasks")[0].value == 4


def test_unknown_metrics_follow_the_catalogue_rules() -> None:
    reg = MetricsRegistry()
    reg.register_counter("Retries.Total")  # sanitised, _total not doubled
    reg.register_counter("queue_depth", settable=True)
    reg.register_counter("idle_ns")
    reg.register_series("prefill_ns", hdr_low=1, hdr_high=10**9)
    reg.register_series("batch_size", hdr_low=1, hdr_high=1024)
    reg.increment("Retries.Total", 2)
    reg.set_counter("queue_depth", 9)
    reg.increment("idle_ns", 2_500_000_000)
    reg.record("prefill_ns", 1_000)
    reg.record("batch_size", 8)
    snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    text = served(snap, gauges=["queue_depth"])
    fams = parse_strict(text)
    assert fams["bench_retries"].type == "counter"
    assert find(fams["bench_retries"].samples, "bench_retries_total")[0].value == 2
    assert fams["bench_queue_depth"].type == "gauge"
    assert fams["bench_idle_seconds"].type == "gauge"
    assert fams["bench_idle_seconds"].samples[0].value == 2.5
    assert fams["bench_prefill_seconds"].type == "histogram"
    assert fams["bench_prefill_quantiles_seconds"].type == "summary"
    assert fams["bench_batch_size"].type == "histogram"
    assert fams["bench_batch_size_quantiles"].type == "summary"


def test_clashing_names_are_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    reg = MetricsRegistry()
    reg.register_counter("pending_tasks", settable=True)  # clashes with the exporter's gauge
    reg.register_counter("a-b")
    reg.register_counter("a_b")  # same family after sanitising
    reg.register_series("ttft_ns", hdr_low=1, hdr_high=100)
    reg.register_counter("ttft_seconds_count", settable=True)  # a sample name of the histogram
    snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=1)
    fams = parse_strict(served(snap, gauges=["pending_tasks", "ttft_seconds_count"]))
    assert find(fams["bench_pending_tasks"].samples, "bench_pending_tasks")[0].value == 1
    assert len(fams["bench_a_b"].samples) == 1
    assert "bench_ttft_seconds" in fams
    assert any("not exported" in r.getMessage() for r in caplog.records)


def test_negative_or_nan_values_are_left_out_not_clamped() -> None:
    reg = MetricsRegistry()
    reg.register_series("skew_ns", hdr_low=1, hdr_high=10**6)
    reg.register_counter("weird", dtype=float)
    reg.register_series("ok", hdr_low=1, hdr_high=100)
    reg.record_many("skew_ns", [-5, 10])
    reg.record("ok", 3)
    reg.increment("weird", math.nan)
    fams = parse_strict(served(reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)))
    assert "bench_skew_seconds" not in fams and "bench_skew_quantiles_seconds" not in fams
    assert "bench_weird" not in fams
    assert "bench_ok" in fams


def test_bad_labels_are_refused() -> None:
    for labels in ({"le": "1"}, {"quantile": "x"}, {"window": "a"}, {"bad-name": "x"}):
        with pytest.raises(ValueError, match="label"):
            SnapshotCollector(labels={"run_id": "r", **labels})
    with pytest.raises(ValueError, match="reserved"):
        SnapshotCollector(labels={"run_id": "r", "bench_session_state": "x"})
    with pytest.raises(ValueError, match="namespace"):
        SnapshotCollector(namespace="1bad")


def test_namespace_is_configurable_and_may_be_empty() -> None:
    fams = parse_strict(served(spec_snapshot(n=3), namespace="llm"))
    assert "llm_ttft_seconds" in fams and "llm_session_state" in fams
    fams = parse_strict(served(spec_snapshot(n=3), namespace=""))
    assert "ttft_seconds" in fams and "samples_issued" in fams and "run" in fams


def test_run_id_is_generated_when_absent() -> None:
    a, b = SnapshotCollector(), SnapshotCollector()
    assert a.run_id and a.run_id != b.run_id


def test_health_reports_age_from_the_local_clock_and_staleness() -> None:
    clock = FakeClock()
    c = SnapshotCollector(labels={"run_id": "r"}, stale_after=5, clock=clock)
    fams = parse_strict(openmetrics_exposition(c))
    assert "bench_exporter_last_snapshot_age_seconds" not in fams
    assert fams["bench_exporter_up"].samples[0].value == 0
    assert "bench_ttft_seconds" not in fams and "bench_run" in fams
    c.update(spec_snapshot(n=3))
    clock.now += 2
    fams = parse_strict(openmetrics_exposition(c))
    assert fams["bench_exporter_last_snapshot_age_seconds"].samples[0].value == 2.0
    assert fams["bench_exporter_up"].samples[0].value == 1
    assert fams["bench_exporter_snapshots_received"].samples[0].value == 1
    clock.now += 4
    assert parse_strict(openmetrics_exposition(c))["bench_exporter_up"].samples[0].value == 0
    assert c.health()["up"] is False and c.health()["age_seconds"] == 6.0
    c.count_decode_error(2)
    c.update(spec_snapshot(state=SessionState.COMPLETE, n=3))
    clock.now += 60  # final values never go stale
    fams = parse_strict(openmetrics_exposition(c))
    assert fams["bench_exporter_up"].samples[0].value == 1
    assert fams["bench_exporter_decode_errors"].samples[0].value == 2
    assert fams["bench_exporter_snapshots_received"].samples[0].value == 2
    seq = fams["bench_exporter_snapshot_sequence"].samples[0].value
    assert seq == c.snapshot.counter


def test_each_scrape_builds_fresh_families() -> None:
    c = SnapshotCollector(labels={"run_id": "r"})
    c.update(spec_snapshot(n=20))
    first = list(c.collect())
    for fam in first:  # a consumer mangling what it got must not affect the next scrape
        fam.samples.clear()
    second = list(c.collect())
    assert {id(f) for f in first}.isdisjoint(id(f) for f in second)
    assert all(f.samples for f in second)


def test_update_swaps_the_whole_view() -> None:
    c = SnapshotCollector(labels={"run_id": "r"})
    old, new = spec_snapshot(n=10), spec_snapshot(n=30)
    c.update(old)
    it = c.collect()
    next(it)  # a scrape in progress holds the view it started with
    c.update(new)
    rest = list(it)
    counts = [s.value for f in rest for s in f.samples if s.name == "bench_ttft_seconds_count"]
    assert counts == [10]
    assert c.snapshot is new


def test_cumulative_buckets_match_numpy_on_random_data() -> None:
    rng = np.random.default_rng(3)
    reg = MetricsRegistry()
    reg.register_series("x", hdr_low=1, hdr_high=10**7, sig_figs=3)
    values = rng.integers(1, 2_000, 10_000)  # below 2048: HDR is exact at sig_figs 3
    reg.record_many("x", values)
    stat = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).series["x"]
    b = cumulative_buckets(stat.hdr)
    assert b.total == 10_000
    assert list(b.cumulative) == [int((values <= bound).sum()) for bound in b.bounds]
