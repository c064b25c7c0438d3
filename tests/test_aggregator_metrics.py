"""SPEC §6 computations, fed directly with EventRecords (no sockets).

The service tests send the same kind of scenarios over real sockets; here the
arithmetic is checked exhaustively, including the invariants under random
event orders (hypothesis).
"""

from __future__ import annotations

import logging

import msgspec
import pytest
from aggregator_scenario import SCENARIO, SCENARIO_COUNTERS, SCENARIO_SERIES, ev
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import MetricsRegistry, SessionState
from registry.aggregator import (
    COUNTERS,
    DIAGNOSTIC_COUNTERS,
    AggregatorEventCodec,
    AggregatorMetrics,
    series_names,
)
from registry.events import EventCodec, EventRecord, EventType

T = EventType


def run(events: list[EventRecord], *, streaming: bool = True, batch: int = 7):
    reg = MetricsRegistry()
    agg = AggregatorMetrics(reg, streaming=streaming)
    for i in range(0, len(events), batch):
        agg.handle_many(events[i : i + batch])
    return reg, agg


@pytest.mark.parametrize("batch", [1, 4, 1000])
def test_hand_computed_scenario(batch: int) -> None:
    reg, agg = run(SCENARIO, batch=batch)
    assert agg.session.state is SessionState.DRAINING
    assert agg.n_pending_tasks == 1  # F
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=agg.n_pending_tasks)
    assert snap.counters == SCENARIO_COUNTERS
    assert list(snap.counters) == [*COUNTERS, *DIAGNOSTIC_COUNTERS]
    assert list(snap.series) == list(SCENARIO_SERIES)
    for name, values in SCENARIO_SERIES.items():
        s = snap.series[name]
        assert s.count == len(values), name
        assert s.total == sum(values), name
        assert s.min == min(values) and s.max == max(values), name
        assert s.sum_sq == sum(v * v for v in values), name
        ordered = sorted(values)
        # nearest rank: p50 of 3 values is rank 2, of 2 values rank 1
        assert s.percentile(50) == ordered[(len(values) + 1) // 2 - 1], name
        assert s.percentile(99.9) == ordered[-1], name
    assert isinstance(snap.series["tpot_ns"].total, float)


def test_non_streaming_has_no_chunk_series_and_ignores_chunks() -> None:
    reg, agg = run(SCENARIO, streaming=False)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=agg.n_pending_tasks)
    assert list(snap.series) == ["sample_latency_ns", "isl", "osl"]
    assert series_names(streaming=False) == ("sample_latency_ns", "isl", "osl")
    assert snap.counters == SCENARIO_COUNTERS
    assert snap.series["sample_latency_ns"].total == 900 + 1100 + 400


def test_error_before_complete_fails_reverse_order_succeeds() -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 10, "x"),
        ev(T.SAMPLE_ISSUED, 10, "y"),
        # x: error first, then completion -> tracked failed, no series value
        ev(T.ERROR_CLIENT, 20, "x"),
        ev(T.SAMPLE_COMPLETE, 30, "x", output_tokens=4),
        # y: completion first, then error -> a success; the error is unmatched
        ev(T.SAMPLE_COMPLETE, 40, "y", output_tokens=4),
        ev(T.ERROR_CLIENT, 50, "y"),
        # a second error for an already failed sample changes nothing
        ev(T.SAMPLE_ISSUED, 60, "z"),
        ev(T.ERROR_CLIENT, 61, "z"),
        ev(T.ERROR_GENERIC, 62, "z"),
        ev(T.SAMPLE_COMPLETE, 70, "z"),
    ]
    reg, agg = run(events, streaming=False)
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["tracked_samples_failed"] == c["total_samples_failed"] == 2
    assert c["tracked_samples_completed"] == 1
    assert c["tracked_output_tokens"] == 4  # only y's
    assert c["events_unmatched"] == 1
    assert (
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
        .series["sample_latency_ns"]
        .count
        == 1
    )
    assert agg.n_pending_tasks == 0 and agg.n_in_flight == 0


def test_error_without_sample_counts_as_session_error() -> None:
    reg, _ = run([ev(T.SESSION_STARTED, 0), ev(T.ERROR_GENERIC, 5, error="connection reset")])
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["session_errors"] == 1
    assert c["total_samples_failed"] == 0


def test_duplicate_session_started_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    reg = MetricsRegistry()
    agg = AggregatorMetrics(reg, streaming=True)
    seen: list[tuple[SessionState, SessionState]] = []
    agg.session.add_listener(lambda old, new: seen.append((old, new)))
    with caplog.at_level(logging.WARNING):
        agg.handle_many([ev(T.SESSION_STARTED, 1), ev(T.SESSION_STARTED, 2)])
    assert agg.session.state is SessionState.LIVE
    assert seen == [(SessionState.INITIALIZE, SessionState.LIVE)]
    assert any("duplicate" in r.getMessage() for r in caplog.records)
    agg.handle(ev(T.SESSION_ENDED, 3))
    agg.handle(ev(T.SESSION_ENDED, 4))
    assert seen[-1] == (SessionState.LIVE, SessionState.DRAINING)
    assert len(seen) == 2


def test_untracked_window_values_stay_out_of_series() -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SAMPLE_ISSUED, 10, "before", input_tokens=3),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 20),
        ev(T.SAMPLE_ISSUED, 30, "inside", input_tokens=4),
        ev(T.SESSION_STOP_PERFORMANCE_TRACKING, 40),
        # issued inside the window, completed after it: still tracked
        ev(T.SAMPLE_RECV_FIRST, 50, "inside"),
        ev(T.SAMPLE_RECV_FIRST, 55, "before"),
        ev(T.SAMPLE_COMPLETE, 60, "before", output_tokens=8),
        ev(T.SAMPLE_COMPLETE, 90, "inside", output_tokens=2),
    ]
    reg, _ = run(events)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    assert snap.series["sample_latency_ns"].total == 60  # 90 - 30 only
    assert snap.series["ttft_ns"].total == 20
    assert snap.series["isl"].total == 4
    assert snap.counters["total_samples_completed"] == 2
    assert snap.counters["tracked_samples_completed"] == 1
    assert snap.counters["tracked_duration_ns"] == 70  # 90 - 20: completion after the window


def test_anomalies_are_counted_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 1, "a"),
        ev(T.SAMPLE_ISSUED, 2, "a"),  # duplicate issue -> unmatched
        ev(T.SAMPLE_RECV_NON_FIRST, 3, "a"),  # chunk before first -> unmatched
        ev(T.SAMPLE_RECV_FIRST, 4, "a"),
        ev(T.SAMPLE_RECV_FIRST, 5, "a"),  # repeated first -> unmatched
        ev(T.SAMPLE_COMPLETE, 6, "nobody"),  # unknown -> unmatched
        ev(T.SAMPLE_RECV_FIRST, 6, "nobody"),  # unknown -> unmatched
        ev(T.SAMPLE_ISSUED, 7, ""),  # no uuid -> malformed
        ev(T.SAMPLE_COMPLETE, 8, ""),  # no uuid -> malformed
        ev(T.SAMPLE_COMPLETE, 9, "a", output_tokens=1),
    ]
    with caplog.at_level(logging.WARNING):
        reg, agg = run(events)
    assert agg.n_pending_tasks == 0
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["events_unmatched"] == 5
    assert c["events_malformed"] == 2
    assert c["tracked_samples_completed"] == 1
    assert c["total_samples_issued"] == 1


def test_codec_counts_unknown_and_malformed_once_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = MetricsRegistry()
    agg = AggregatorMetrics(reg, streaming=True)
    codec = AggregatorEventCodec(agg)
    unknown = msgspec.msgpack.encode(
        {"event_type": "sample.teleported", "timestamp_ns": 1, "sample_uuid": "q"}
    )
    wrong_field = msgspec.msgpack.encode({"event_type": "sample.issued", "timestamp_ns": "soon"})
    good_payload = EventCodec().encode(ev(T.SESSION_STARTED, 1))[1]
    bad = [unknown] * 5 + [b"\xc1\xc1garbage"] * 3 + [wrong_field] * 2 + [b"\x93\x01\x02\x03"]
    with caplog.at_level(logging.WARNING, logger="registry.aggregator.metrics"):
        for payload in bad:
            try:
                codec.decode(payload)
            except ValueError as exc:
                assert codec.on_decode_error(payload, exc) is None
            else:
                pytest.fail(f"{payload!r} decoded")
    agg.handle(codec.decode(good_payload))
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["events_malformed"] == len(bad)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages  # one per kind
    assert any("unknown event type 'sample.teleported'" in m for m in messages)
    assert agg.session.state is SessionState.LIVE


# -- invariants under arbitrary event orders ---------------------------------

_SAMPLE_TYPES = [
    T.SAMPLE_ISSUED,
    T.SAMPLE_RECV_FIRST,
    T.SAMPLE_RECV_NON_FIRST,
    T.SAMPLE_COMPLETE,
    T.ERROR_CLIENT,
    T.SESSION_START_PERFORMANCE_TRACKING,
    T.SESSION_STOP_PERFORMANCE_TRACKING,
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_SAMPLE_TYPES),
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.integers(0, 50),
            st.integers(0, 9),
        ),
        max_size=80,
    ),
    st.sampled_from([1, 3, 100]),
)
def test_invariants_hold_for_any_order(
    steps: list[tuple[EventType, str, int, int]], batch: int
) -> None:
    ts = 0
    events = [ev(T.SESSION_STARTED, 0)]
    for t, uuid, gap, tokens in steps:
        ts += gap
        if t.is_session:
            events.append(ev(t, ts))
        elif t is T.SAMPLE_COMPLETE:
            events.append(ev(t, ts, uuid, output_tokens=tokens, finish_reason="stop"))
        elif t is T.SAMPLE_ISSUED:
            events.append(ev(t, ts, uuid, input_tokens=tokens))
        else:
            events.append(ev(t, ts, uuid))
    reg, agg = run(events, batch=batch)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=agg.n_pending_tasks)
    c = snap.counters
    tracked_in_flight = agg.n_pending_tasks
    assert c["tracked_samples_issued"] == (
        c["tracked_samples_completed"] + c["tracked_samples_failed"] + tracked_in_flight
    )
    assert c["total_samples_issued"] >= (
        c["total_samples_completed"] + c["total_samples_failed"] + tracked_in_flight
    )
    assert c["total_samples_issued"] - c["total_samples_completed"] - c["total_samples_failed"] <= (
        agg.n_in_flight
    )
    completed = c["tracked_samples_completed"]
    assert snap.series["sample_latency_ns"].count == completed
    assert snap.series["isl"].count == completed == snap.series["osl"].count
    assert snap.series["ttft_ns"].count <= completed
    assert sum(c[f"tracked_finish_reason_{r}"] for r in ("stop", "other")) == completed
    assert snap.series["sample_latency_ns"].min >= 0
    assert c["total_duration_ns"] == ts
    assert 0 <= c["tracked_duration_ns"] <= ts
