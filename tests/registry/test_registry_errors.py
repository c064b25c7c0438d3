"""Registry errors name the metric and what it expected (issue 14), and change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from registry import (
    MetricKindError,
    MetricsRegistry,
    SessionState,
    UnknownMetricError,
    register_standard_metrics,
)


@pytest.fixture
def reg() -> MetricsRegistry:
    r = MetricsRegistry()
    register_standard_metrics(r, streaming=True)
    return r


def counts(reg: MetricsRegistry) -> tuple[dict[str, int | float], dict[str, int]]:
    snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    return snap.counters, {name: s.count for name, s in snap.series.items()}


def test_a_float_into_an_int_series_names_the_series_and_int(reg: MetricsRegistry) -> None:
    with pytest.raises(TypeError) as info:
        reg.record("ttft_ns", 1.5)
    text = str(info.value)
    assert "'ttft_ns'" in text and "int" in text and "1.5" in text and "dtype=float" in text
    for bad in (None, "12", b"1"):
        with pytest.raises(TypeError, match=r"series 'ttft_ns' holds int values"):
            reg.record("ttft_ns", bad)
    with pytest.raises(TypeError, match=r"series 'tpot_ns' holds float values, got 'x'"):
        reg.record("tpot_ns", "x")
    with pytest.raises(OverflowError, match=r"'ttft_ns' \(int\) cannot hold .* int64"):
        reg.record("ttft_ns", 2**70)
    assert counts(reg)[1]["ttft_ns"] == 0  # nothing half-recorded


def test_record_on_a_counter_says_it_is_a_counter_and_to_use_increment(
    reg: MetricsRegistry,
) -> None:
    with pytest.raises(MetricKindError) as info:
        reg.record("tracked_samples_completed", 1)
    assert isinstance(info.value, KeyError) and isinstance(info.value, TypeError)
    text = str(info.value)
    assert text.startswith("'tracked_samples_completed' is a counter, not a series")
    assert "increment('tracked_samples_completed'" in text
    with pytest.raises(KeyError, match="is a counter"):  # code catching KeyError still does
        reg.record_many("total_samples_issued", [1, 2])
    with pytest.raises(TypeError, match="is a counter"):
        reg.appender("total_samples_issued")


def test_increment_on_a_series_says_to_use_record(reg: MetricsRegistry) -> None:
    with pytest.raises(MetricKindError, match=r"'ttft_ns' is a series, not a counter: use record"):
        reg.increment("ttft_ns")
    with pytest.raises(MetricKindError, match="is a series"):
        reg.set_counter("osl", 3)


def test_unknown_names_list_close_matches(reg: MetricsRegistry) -> None:
    with pytest.raises(UnknownMetricError) as info:
        reg.record("ttf_ns", 1)
    assert isinstance(info.value, KeyError)
    # str() is the sentence itself, not KeyError's quoted repr
    assert str(info.value) == "unknown series 'ttf_ns'; did you mean 'ttft_ns' or 'tpot_ns'?"
    with pytest.raises(KeyError, match=r"did you mean 'sample_latency_ns'\?"):
        reg.record("latency", 1)  # a part of a name is a match too
    with pytest.raises(KeyError, match=r"'total_samples_completed', 'tracked_samples_completed'"):
        reg.record("completed", 1)  # no series is close: the counters that are, and increment
    with pytest.raises(KeyError, match=r"unknown counter 'issued'; did you mean 'total_samples_"):
        reg.increment("issued")
    with pytest.raises(KeyError, match=r"unknown counter 'nope'; none of the \d+ registered"):
        reg.set_counter("nope", 1)
    with pytest.raises(KeyError, match=r"unknown series \['x'\] \(list\): metric names are str"):
        reg.record(["x"], 1)  # type: ignore[arg-type]
    for read in (reg.counter_info, reg.counter_value):
        with pytest.raises(KeyError, match="unknown counter 'tracked_samples_complete'"):
            read("tracked_samples_complete")
    with pytest.raises(KeyError, match=r"did you mean 'isl'"):
        reg.series_config("isll")


def test_a_small_registry_lists_what_it_has() -> None:
    reg = MetricsRegistry()
    with pytest.raises(KeyError, match=r"no series is registered \(register it first\)"):
        reg.record("lat", 1)
    reg.register_series("lat", hdr_low=1, hdr_high=100)
    reg.register_series("queue_wait", hdr_low=1, hdr_high=100)
    with pytest.raises(KeyError, match=r"registered series: lat, queue_wait$"):
        reg.record("zzz", 1)


def test_increment_refuses_a_fraction_for_an_int_counter_and_keeps_ints(
    reg: MetricsRegistry,
) -> None:
    with pytest.raises(TypeError, match=r"counter 'tracked_output_tokens' counts int values, got"):
        reg.increment("tracked_output_tokens", 1.5)
    with pytest.raises(TypeError, match=r"counter 'tracked_output_tokens' .* got delta '1'"):
        reg.increment("tracked_output_tokens", "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="monotonic"):
        reg.increment("tracked_output_tokens", -1)
    reg.increment("tracked_output_tokens", np.int64(3))  # numpy integers count as ints
    reg.increment("tracked_output_tokens", True)
    value = reg.counter_value("tracked_output_tokens")
    assert value == 4 and type(value) is int
    reg.register_counter("busy_s", dtype=float)
    reg.increment("busy_s", 1)
    reg.increment("busy_s", np.float64(0.5))
    assert reg.counter_value("busy_s") == 1.5 and type(reg.counter_value("busy_s")) is float
