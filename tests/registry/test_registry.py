"""MetricsRegistry behaviour (SPEC §3): registration, hot path, snapshots."""

from __future__ import annotations

import base64
import logging
import threading

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from registry import (
    DEFAULT_PERCENTILES,
    EarlyStoppingSpec,
    MetricsRegistry,
    PercentileMethod,
    SessionState,
    percentile_key,
)
from registry.mlperf import early_stopping_indices

LIVE = SessionState.LIVE
COMPLETE = SessionState.COMPLETE


def make_registry() -> MetricsRegistry:
    reg = MetricsRegistry()
    reg.register_counter("issued")
    reg.register_counter("duration_ns", settable=True)
    reg.register_counter("tokens", dtype=float)
    reg.register_series("lat", hdr_low=1, hdr_high=10**12)
    reg.register_series("tpot", hdr_low=1, hdr_high=10**9, dtype=float)
    return reg


def test_snapshot_lists_counters_then_series_in_registration_order() -> None:
    reg = MetricsRegistry()
    reg.register_series("s1", hdr_low=1, hdr_high=100)
    reg.register_counter("c1")
    reg.register_series("s0", hdr_low=1, hdr_high=100)
    reg.register_counter("c0")
    snap = reg.build_snapshot(state=LIVE, n_pending_tasks=3)
    assert [m.name for m in snap.metrics] == ["c1", "c0", "s1", "s0"]
    assert snap.state is LIVE and snap.n_pending_tasks == 3


def test_duplicate_names_raise_value_error_naming_them() -> None:
    reg = make_registry()
    for register in (
        lambda: reg.register_counter("lat"),
        lambda: reg.register_series("issued", hdr_low=1, hdr_high=10),
        lambda: reg.register_counter("issued"),
    ):
        with pytest.raises(ValueError, match="already registered"):
            register()


def test_unknown_names_on_the_hot_path_raise_key_error() -> None:
    reg = make_registry()
    with pytest.raises(KeyError, match="nope"):
        reg.record("nope", 1)
    with pytest.raises(KeyError, match="nope"):
        reg.increment("nope")
    with pytest.raises(KeyError):
        reg.record_many("nope", [1, 2])
    with pytest.raises(KeyError):
        reg.set_counter("nope", 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hdr_low": 0, "hdr_high": 10}, "hdr_low"),
        ({"hdr_low": 10, "hdr_high": 19}, "hdr_high"),
        ({"hdr_low": 1, "hdr_high": 10, "sig_figs": 0}, "sig_figs"),
        ({"hdr_low": 1, "hdr_high": 10, "sig_figs": 6}, "sig_figs"),
        ({"hdr_low": 1, "hdr_high": 10, "percentiles": (90.0, 99.0)}, "contain 50"),
        ({"hdr_low": 1, "hdr_high": 10, "dtype": str}, "dtype"),
    ],
)
def test_series_bounds_are_validated(kwargs: dict, message: str) -> None:
    reg = MetricsRegistry()
    with pytest.raises(ValueError, match=message):
        reg.register_series("s", **kwargs)


def test_counters_increment_set_and_refuse_misuse() -> None:
    reg = make_registry()
    reg.increment("issued")
    reg.increment("issued", 4)
    reg.increment("tokens", 2.5)
    reg.set_counter("duration_ns", 1234)
    reg.set_counter("duration_ns", 1000)  # settable counters may go down
    with pytest.raises(ValueError, match="monotonic"):
        reg.set_counter("issued", 10)
    with pytest.raises(ValueError, match="monotonic"):
        reg.increment("issued", -1)
    counters = reg.build_snapshot(state=LIVE, n_pending_tasks=0).counters
    assert counters == {"issued": 5, "duration_ns": 1000, "tokens": 2.5}
    assert isinstance(counters["issued"], int)


def test_empty_series_has_zero_rollups_zero_percentiles_and_no_histogram() -> None:
    reg = make_registry()
    for state in (LIVE, COMPLETE):
        stat = reg.build_snapshot(state=state, n_pending_tasks=0).series["lat"]
        assert (stat.count, stat.total, stat.min, stat.max, stat.sum_sq) == (0, 0, 0, 0, 0)
        assert stat.percentiles == {percentile_key(p): 0.0 for p in DEFAULT_PERCENTILES}
        assert stat.histogram == []


def test_percentile_keys_are_str_of_float() -> None:
    reg = MetricsRegistry()
    reg.register_series("s", hdr_low=1, hdr_high=1000, percentiles=(50, 99.9, 0))
    reg.record("s", 5)
    stat = reg.build_snapshot(state=LIVE, n_pending_tasks=0).series["s"]
    assert list(stat.percentiles) == ["50.0", "99.9", "0.0"]


def test_hdr_field_decodes_with_hdrh_and_holds_the_counts() -> None:
    reg = make_registry()
    values = np.random.default_rng(7).integers(1_000, 5_000_000, 20_000)
    reg.record_many("lat", values)
    stat = reg.build_snapshot(state=LIVE, n_pending_tasks=0).series["lat"]
    assert stat.hdr is not None
    hist = HdrHistogram.decode(base64.b64encode(stat.hdr))
    assert hist.get_total_count() == values.size
    reference = HdrHistogram(1, 10**12, 3)
    for v in values.tolist():
        reference.record_value(v)
    for p in (1, 50, 90, 99, 99.9):
        assert hist.get_value_at_percentile(p) == reference.get_value_at_percentile(p)


def test_clamping_warns_once_per_series_and_keeps_rollups_exact(caplog) -> None:
    reg = MetricsRegistry()
    reg.register_series("s", hdr_low=10, hdr_high=1000)
    with caplog.at_level(logging.WARNING, logger="registry.core.series"):
        reg.record_many("s", [1, 5, 500, 5000])
        reg.build_snapshot(state=LIVE, n_pending_tasks=0)
        reg.record("s", 10**6)
        snap = reg.build_snapshot(state=LIVE, n_pending_tasks=0)
    warnings = [r for r in caplog.records if "clamped" in r.getMessage()]
    assert len(warnings) == 1 and "'s'" in warnings[0].getMessage()
    stat = snap.series["s"]
    assert (stat.count, stat.min, stat.max, stat.total) == (5, 1, 10**6, 1 + 5 + 500 + 5000 + 10**6)
    hist = HdrHistogram.decode(base64.b64encode(stat.hdr))
    assert hist.get_total_count() == 5


def test_float_series_keep_float_rollups() -> None:
    reg = make_registry()
    reg.record("tpot", 1.5)
    reg.record_many("tpot", np.array([2.25, 3.0]))
    stat = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0).series["tpot"]
    assert stat.count == 3
    assert stat.total == pytest.approx(6.75)
    assert stat.min == 1.5 and stat.max == 3.0
    assert stat.sum_sq == pytest.approx(1.5**2 + 2.25**2 + 9.0)
    assert stat.percentile(50) == 2.25


def test_values_of_the_wrong_kind_are_refused_at_the_call_site() -> None:
    reg = make_registry()
    reg.record("lat", 5)
    for bad in ("oops", 1.5, None):
        with pytest.raises(TypeError):
            reg.record("lat", bad)
    with pytest.raises(TypeError, match="'lat'"):
        reg.record_many("lat", [1.5, 2.5])
    with pytest.raises(TypeError, match="'tpot'"):
        reg.record_many("tpot", ["a", "b"])
    reg.record("tpot", 3)  # ints are fine in a float series
    reg.record("lat", np.int64(7))  # numpy integers are fine in an int series
    snap = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0)
    assert snap.series["lat"].count == 2 and snap.series["lat"].total == 12
    assert snap.series["tpot"].total == 3.0


def test_integer_rollups_stay_exact_beyond_int64() -> None:
    reg = make_registry()
    big = 3 * 10**12  # squares far beyond int64, sums of squares beyond uint64
    reg.record_many("lat", np.full(5_000_000, big, dtype=np.int64))
    reg.record("lat", big + 1)
    stat = reg.build_snapshot(state=LIVE, n_pending_tasks=0).series["lat"]
    assert stat.total == 5_000_000 * big + big + 1
    # the sum of squares is exact internally and goes out as its correctly rounded float
    exact = 5_000_000 * big * big + (big + 1) ** 2
    assert float(exact) != float(5_000_000 * big * big)  # the +1 term is visible in floats
    assert stat.sum_sq == float(exact) and isinstance(stat.sum_sq, float)


def test_record_many_copies_the_callers_buffer() -> None:
    reg = make_registry()
    buf = np.array([1, 2, 3], dtype=np.int64)
    reg.record_many("lat", buf)
    buf[:] = 100
    stat = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0).series["lat"]
    assert stat.total == 6


def test_snapshot_sequence_increments_and_terminal_is_exact() -> None:
    reg = make_registry()
    reg.record_many("lat", [10, 20, 30, 40])
    first = reg.build_snapshot(state=LIVE, n_pending_tasks=0)
    second = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0)
    assert second.counter == first.counter + 1
    assert second.timestamp_ns >= first.timestamp_ns
    assert second.series["lat"].percentile(50) == 20.0  # rank ceil(0.5*4) = 2


def test_concurrent_records_and_snapshots_conserve_every_value() -> None:
    reg = make_registry()
    n_threads, per_thread = 4, 50_000
    done = threading.Event()
    seen_counts: list[int] = []

    def snapshotter() -> None:
        while not done.is_set():
            snap = reg.build_snapshot(state=LIVE, n_pending_tasks=0)
            seen_counts.append(snap.series["lat"].count)

    def recorder(offset: int) -> None:
        for i in range(per_thread):
            reg.record("lat", offset + i)
            if i % 1000 == 0:
                reg.record_many("lat", [1, 2, 3])

    snap_thread = threading.Thread(target=snapshotter)
    snap_thread.start()
    workers = [threading.Thread(target=recorder, args=(k * 10**6,)) for k in range(n_threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    snap_thread.join()
    stat = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0).series["lat"]
    expected_values = [k * 10**6 + i for k in range(n_threads) for i in range(per_thread)]
    extra = n_threads * (per_thread // 1000) * [1, 2, 3]
    assert stat.count == len(expected_values) + len(extra)
    assert stat.total == sum(expected_values) + sum(extra)
    assert seen_counts == sorted(seen_counts)  # live counts never go backwards


def test_non_finite_floats_are_counted_and_kept_out_of_the_numbers(caplog) -> None:
    reg = make_registry()
    with caplog.at_level(logging.WARNING, logger="registry.core.series"):
        reg.record_many("tpot", [1.0, float("nan"), 2.0, float("inf")])
        reg.record("tpot", float("-inf"))
        stat = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0).series["tpot"]
    assert (stat.count, stat.total, stat.max) == (2, 3.0, 2.0)
    assert sum(1 for r in caplog.records if "NaN" in r.getMessage()) == 1


def test_a_capture_holds_exactly_what_was_recorded_before_it() -> None:
    reg = make_registry()
    reg.record_many("lat", [1, 2, 3])
    reg.increment("issued", 3)
    capture = reg.capture(state=LIVE, n_pending_tasks=0)
    reg.record("lat", 100)  # after the capture: belongs to the next snapshot
    reg.increment("issued")
    snap = capture.build()
    assert snap.counters["issued"] == 3
    assert (snap.series["lat"].count, snap.series["lat"].total) == (3, 6)
    later = reg.build_snapshot(state=LIVE, n_pending_tasks=0)
    assert later.counter == snap.counter + 1
    assert later.counters["issued"] == 4 and later.series["lat"].total == 106


def test_captures_never_built_or_built_out_of_order_lose_and_double_count_nothing() -> None:
    reg = make_registry()
    reg.record_many("lat", [1, 2])
    reg.capture(state=LIVE, n_pending_tasks=0)  # dropped: never built
    reg.record("lat", 3)
    older = reg.capture(state=LIVE, n_pending_tasks=0)
    reg.record("lat", 4)
    newer = reg.capture(state=LIVE, n_pending_tasks=0)
    assert newer.build().series["lat"].total == 1 + 2 + 3 + 4
    # built late, the older capture shows everything folded so far, never less
    assert older.build().series["lat"].total == 1 + 2 + 3 + 4
    final = reg.build_snapshot(state=COMPLETE, n_pending_tasks=0).series["lat"]
    assert (final.count, final.total) == (4, 10)


def test_settings_are_readable_and_checked() -> None:
    reg = MetricsRegistry()
    assert reg.percentile_method is PercentileMethod.NEAREST_RANK
    assert reg.early_stopping == EarlyStoppingSpec(confidence=0.99, tolerance=0.0)
    reg.register_series("ttft_ns", hdr_low=1, hdr_high=10**9, tail_latency=True)
    reg.register_series("isl", hdr_low=1, hdr_high=10**6)
    assert reg.series_config("ttft_ns").tail_latency is True
    assert reg.series_config("isl").tail_latency is False
    off = MetricsRegistry(percentile_method="loadgen", early_stopping=None)
    assert off.percentile_method is PercentileMethod.LOADGEN and off.early_stopping is None
    with pytest.raises(TypeError, match="EarlyStoppingSpec"):
        MetricsRegistry(early_stopping=0.99)  # type: ignore[arg-type]


def _tail_registry(n: int = 1000, **kwargs) -> MetricsRegistry:
    reg = MetricsRegistry(**kwargs)
    reg.register_series("ttft_ns", hdr_low=1, hdr_high=10**9, tail_latency=True)
    reg.register_series("isl", hdr_low=1, hdr_high=10**6)
    reg.record_many("ttft_ns", np.arange(1, n + 1))
    reg.record_many("isl", np.arange(1, n + 1))
    return reg


@pytest.mark.parametrize("state", [COMPLETE, SessionState.INTERRUPTED])
def test_terminal_snapshots_give_tail_latency_series_their_early_stopping_map(state) -> None:
    reg = _tail_registry()
    stat = reg.build_snapshot(state=state, n_pending_tasks=0).series
    es = stat["ttft_ns"].early_stopping_percentiles
    assert es is not None and list(es) == [
        "99.9",
        "99.0",
        "97.0",
        "95.0",
        "90.0",
        "80.0",
        "75.0",
        "50.0",
    ]
    indices = early_stopping_indices(1000, DEFAULT_PERCENTILES)
    assert es == {k: (None if i is None else float(i + 1)) for k, i in indices.items()}
    # p99: 1000 >= 838 = h(2) + 2 but < h(3) + 3: t = 2, the estimate is sorted[n - 2]
    assert es["99.9"] is None and es["99.0"] == 999.0
    assert stat["isl"].early_stopping_percentiles is None  # not a tail-latency series


def test_live_snapshots_and_a_disabled_test_have_no_map() -> None:
    live = _tail_registry().build_snapshot(state=LIVE, n_pending_tasks=0)
    assert live.series["ttft_ns"].early_stopping_percentiles is None
    draining = _tail_registry().build_snapshot(state=SessionState.DRAINING, n_pending_tasks=0)
    assert draining.series["ttft_ns"].early_stopping_percentiles is None
    off = _tail_registry(early_stopping=None).build_snapshot(state=COMPLETE, n_pending_tasks=0)
    assert off.series["ttft_ns"].early_stopping_percentiles is None


def test_a_lower_confidence_gives_estimates_earlier() -> None:
    strict = _tail_registry(400).build_snapshot(state=COMPLETE, n_pending_tasks=0)
    loose = _tail_registry(400, early_stopping=EarlyStoppingSpec(confidence=0.5)).build_snapshot(
        state=COMPLETE, n_pending_tasks=0
    )
    s = strict.series["ttft_ns"].early_stopping_percentiles
    lo = loose.series["ttft_ns"].early_stopping_percentiles
    assert s is not None and lo is not None
    assert s["99.0"] is None and lo["99.0"] is not None  # 400 < 662, but enough at 0.5
    assert all(lo[k] <= s[k] for k in s if s[k] is not None)
