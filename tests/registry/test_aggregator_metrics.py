"""SPEC §6 computations, fed directly with EventRecords (no sockets).

The service tests send the same kind of scenarios over real sockets; here the
arithmetic is checked exhaustively, including the invariants under random
event orders (hypothesis).
"""

from __future__ import annotations

import logging

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import MetricsRegistry, SessionState
from registry.aggregator import (
    COUNTERS,
    DIAGNOSTIC_COUNTERS,
    FINISH_REASONS,
    AggregatorEventCodec,
    AggregatorMetrics,
    series_names,
)
from registry.events import EventCodec, EventRecord, EventType
from registry.events.data import PromptData
from tests.support.aggregator_scenario import (
    SCENARIO,
    SCENARIO_COUNTERS,
    SCENARIO_IN_FLIGHT,
    SCENARIO_SERIES,
    err,
    ev,
)

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
    assert agg.n_pending_tasks == 0  # no tokenizations without a tokenizer
    assert agg.n_in_flight == SCENARIO_IN_FLIGHT
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
        # nearest rank: p50 of n values is rank ceil(n/2)
        assert s.percentile(50) == ordered[(len(values) + 1) // 2 - 1], name
        assert s.percentile(99.9) == ordered[-1], name
    assert isinstance(snap.series["tpot_ns"].total, float)


def test_upstream_registration_order() -> None:
    # mlcommons/endpoints' order: counters then series, as its snapshots list them
    assert COUNTERS[:6] == (
        "total_samples_issued",
        "total_samples_completed",
        "total_samples_failed",
        "tracked_samples_issued",
        "tracked_samples_completed",
        "tracked_samples_failed",
    )
    assert COUNTERS[-3:] == (
        "tracked_duration_ns",
        "legacy_loadgen_window_duration_ns",
        "total_duration_ns",
    )
    assert series_names(streaming=True) == (
        "sample_latency_ns",
        "isl",
        "osl",
        "ttft_ns",
        "chunk_delta_ns",
        "tpot_ns",
    )


def test_non_streaming_has_no_chunk_series_and_ignores_chunks() -> None:
    reg, agg = run(SCENARIO, streaming=False)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=agg.n_pending_tasks)
    assert list(snap.series) == ["sample_latency_ns", "isl", "osl"]
    assert series_names(streaming=False) == ("sample_latency_ns", "isl", "osl")
    assert snap.counters == SCENARIO_COUNTERS
    assert snap.series["sample_latency_ns"].total == 900 + 900 + 1100 + 400


def test_failed_samples_keep_their_latencies_and_every_error_counts() -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 10, "x"),
        ev(T.SAMPLE_ISSUED, 10, "y"),
        # x: error first, then completion: tracked failed AND completed, latency kept
        err(T.ERROR_CLIENT, 20, "x"),
        ev(T.SAMPLE_COMPLETE, 30, "x"),
        # y: completion first, then the error: only total_samples_failed moves
        ev(T.SAMPLE_COMPLETE, 40, "y", output_tokens=4),
        err(T.ERROR_CLIENT, 50, "y"),
        # two errors for one sample count twice, as upstream counts them
        ev(T.SAMPLE_ISSUED, 60, "z"),
        err(T.ERROR_CLIENT, 61, "z"),
        err(T.ERROR_GENERIC, 62, "z"),
        ev(T.SAMPLE_COMPLETE, 70, "z"),
    ]
    reg, agg = run(events, streaming=False)
    snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    c = snap.counters
    assert c["total_samples_failed"] == 4
    assert c["tracked_samples_failed"] == 3  # x, z, z
    assert c["tracked_samples_completed"] == c["total_samples_completed"] == 3
    assert c["tracked_output_tokens"] == 4  # only y's
    assert c["events_unmatched"] == 1  # y's late error
    assert sorted(snap.series["sample_latency_ns"].percentiles.values())[-1] == 30
    assert snap.series["sample_latency_ns"].count == 3
    assert snap.series["osl"].count == 1
    assert sum(c[f"tracked_finish_reason_{r}"] for r in FINISH_REASONS) == 0  # none given
    assert agg.n_in_flight == 0


def test_error_without_sample_counts_as_session_error_and_failure() -> None:
    reg, _ = run([ev(T.SESSION_STARTED, 0), err(T.ERROR_SESSION, 5, message="connection reset")])
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["session_errors"] == 1
    assert c["total_samples_failed"] == 1  # upstream counts every error event
    assert c["tracked_samples_failed"] == 0


def test_duplicate_session_started_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    reg = MetricsRegistry()
    agg = AggregatorMetrics(reg, streaming=True)
    seen: list[tuple[SessionState, SessionState]] = []
    agg.session.add_listener(lambda old, new: seen.append((old, new)))
    with caplog.at_level(logging.WARNING):
        agg.handle_many(
            [ev(T.SESSION_STARTED, 1), ev(T.SESSION_STARTED, 2), ev(T.SAMPLE_ISSUED, 9, "a")]
        )
    assert agg.session.state is SessionState.LIVE
    assert seen == [(SessionState.INITIALIZE, SessionState.LIVE)]
    assert any("duplicate" in r.getMessage() for r in caplog.records)
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["total_duration_ns"] == 8  # from the first started, not the duplicate
    agg.handle(ev(T.SESSION_ENDED, 3))
    agg.handle(ev(T.SESSION_ENDED, 4))
    assert seen[-1] == (SessionState.LIVE, SessionState.DRAINING)
    assert len(seen) == 2


def test_events_after_ended_are_ignored_even_in_the_same_batch() -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 10, "a"),
        ev(T.SESSION_ENDED, 20),
        ev(T.SAMPLE_COMPLETE, 30, "a"),
        ev(T.SAMPLE_ISSUED, 40, "b"),
    ]
    reg, agg = run(events, batch=100)
    agg.handle(ev(T.SAMPLE_ISSUED, 50, "c"))
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["total_samples_issued"] == 1
    assert c["total_samples_completed"] == 0
    assert c["total_duration_ns"] == 20  # session.ended's own timestamp counts


def test_stop_loadgen_moves_only_the_total_duration() -> None:
    reg, _ = run([ev(T.SESSION_STARTED, 100), ev(T.SESSION_STOP_LOADGEN, 900)])
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["total_duration_ns"] == 800
    assert all(v == 0 for k, v in c.items() if k != "total_duration_ns")


def test_events_before_started_do_not_count_in_total_duration() -> None:
    reg, _ = run(
        [ev(T.SAMPLE_ISSUED, 5, "early"), ev(T.SESSION_STARTED, 100), ev(T.SESSION_ENDED, 150)]
    )
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["total_duration_ns"] == 50
    assert c["total_samples_issued"] == 1


def test_untracked_window_values_stay_out_of_series() -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SAMPLE_ISSUED, 10, "before", input_tokens=3),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 20),
        ev(T.SAMPLE_ISSUED, 30, "inside", input_tokens=4),
        ev(T.SESSION_STOP_PERFORMANCE_TRACKING, 40),
        ev(T.SAMPLE_ISSUED, 45, "after", input_tokens=5),
        # issued inside the window, completed after it: still tracked
        ev(T.SAMPLE_RECV_FIRST, 50, "inside"),
        ev(T.SAMPLE_RECV_FIRST, 55, "before"),
        ev(T.SAMPLE_COMPLETE, 60, "before", output_tokens=8),
        ev(T.SAMPLE_COMPLETE, 90, "inside", output_tokens=2),
        ev(T.SAMPLE_COMPLETE, 95, "after", output_tokens=2),
    ]
    reg, _ = run(events)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    assert snap.series["sample_latency_ns"].total == 60  # 90 - 30 only
    assert snap.series["ttft_ns"].total == 20
    assert snap.series["isl"].total == 4
    assert snap.counters["total_samples_completed"] == 3
    assert snap.counters["tracked_samples_completed"] == 1
    assert snap.counters["tracked_duration_ns"] == 70  # 90 - 20: completion after the window
    assert snap.counters["legacy_loadgen_window_duration_ns"] == 60  # 90 - 30
    assert snap.counters["events_unmatched"] == 0  # untracked samples are not strangers


def test_windows_and_the_legacy_loadgen_window() -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 100),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 150),  # already tracking: ignored
        ev(T.SAMPLE_ISSUED, 200, "a"),
        ev(T.SAMPLE_ISSUED, 300, "b"),
        ev(T.SESSION_STOP_PERFORMANCE_TRACKING, 400),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 500),  # an empty window: duration 0
        ev(T.SESSION_STOP_PERFORMANCE_TRACKING, 600),
        ev(T.SAMPLE_COMPLETE, 1000, "b"),  # the latest-issued one that completed ends it
        ev(T.SAMPLE_COMPLETE, 1500, "a"),
    ]
    reg, _ = run(events, batch=1)
    c = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
    assert c["tracked_duration_ns"] == 1400  # 1500 - 100; the empty window adds 0
    assert c["legacy_loadgen_window_duration_ns"] == 800  # 1000 - 200


def test_token_ids_prompts_give_isl_without_a_tokenizer() -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 1, "ids", data=PromptData.build(token_ids=list(range(300)))),
        ev(T.SAMPLE_ISSUED, 2, "empty", data=PromptData.build(token_ids=[])),
        ev(T.SAMPLE_ISSUED, 3, "both", input_tokens=7, data=PromptData.build(token_ids=[1, 2])),
        ev(T.SAMPLE_ISSUED, 4, "text", data=PromptData.build(text="needs a tokenizer")),
        ev(T.SAMPLE_ISSUED, 5, "none"),
    ]
    reg, _ = run(events)
    isl = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0).series["isl"]
    # token ids counted (an empty tuple is 0), the extension wins, text is skipped
    assert sorted(isl.percentiles.values())[-1] == 300
    assert isl.count == 3 and isl.total == 300 + 0 + 7


def test_receives_out_of_order_are_rejected_and_a_completion_before_a_chunk_is_applied() -> None:
    """SPEC §6: a completion is never rejected for its timestamp; only a receive that
    cannot be an interval (before its issue, before the previous receive) is."""
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 100, "a"),
        ev(T.SAMPLE_RECV_FIRST, 90, "a"),  # before its issue: rejected
        ev(T.SAMPLE_RECV_FIRST, 120, "a"),
        ev(T.SAMPLE_RECV_NON_FIRST, 110, "a"),  # before the previous receive: rejected
        ev(T.SAMPLE_RECV_NON_FIRST, 130, "a"),
        ev(T.SAMPLE_COMPLETE, 125, "a"),  # before the last receive: applied, and counted
        ev(T.SAMPLE_COMPLETE, 140, "a", output_tokens=3),  # its row is closed: unmatched
    ]
    reg, agg = run(events)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    c = snap.counters
    assert c["events_out_of_order"] == 2
    assert c["samples_complete_before_chunk"] == 1
    assert snap.series["ttft_ns"].total == 20
    assert snap.series["chunk_delta_ns"].total == 10
    assert snap.series["sample_latency_ns"].total == 25
    assert (c["tracked_samples_completed"], c["total_samples_completed"]) == (1, 2)
    assert c["events_unmatched"] == 1
    assert agg.n_in_flight == 0


@pytest.mark.parametrize("batch", [1, 1000])
def test_a_completion_before_its_first_chunk_gets_upstreams_negative_tpot(batch: int) -> None:
    """Upstream records (complete - first receive) / (tokens after the first chunk) as it
    is, negative when the completion is stamped first; so do we (exact series), while
    the HDR clamps it to its lowest value."""
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 0, "a"),
        ev(T.SAMPLE_RECV_FIRST, 50, "a"),
        ev(T.SAMPLE_COMPLETE, 40, "a", output_tokens=3),
    ]
    reg, _ = run(events, batch=batch)
    final = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    tpot = final.series["tpot_ns"]
    assert (tpot.count, tpot.min, tpot.max) == (1, -5.0, -5.0)
    assert final.series["sample_latency_ns"].total == 40
    assert final.counters["samples_complete_before_chunk"] == 1
    assert final.counters["tracked_duration_ns"] == 40


@pytest.mark.parametrize("batch", [1, 1000])
def test_a_chunk_receive_follows_one_rule_with_or_without_the_chunk_series(batch: int) -> None:
    """After a re-issue moves the sample's issue time past its latest receive, a
    chunk between the two is in order for every path (the hot loops' rule is the
    full rule's first case): the same counts and row streaming or not."""
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 100, "a"),
        ev(T.SAMPLE_RECV_FIRST, 110, "a"),
        ev(T.SAMPLE_ISSUED, 120, "a"),  # a retry: the row is reused, issued moves on
        ev(T.SAMPLE_RECV_NON_FIRST, 115, "a"),  # after the receive, before the re-issue
        ev(T.SAMPLE_RECV_NON_FIRST, 105, "a"),  # before the receive: out of order
    ]
    seen = []
    for streaming in (True, False):
        reg, agg = run(events, streaming=streaming, batch=batch)
        snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
        slot = agg.rows.index["a"]
        seen.append(
            (snap.counters["events_out_of_order"], agg.rows.last_recv[slot], agg.rows.chunks[slot])
        )
        if streaming:
            assert snap.series["chunk_delta_ns"].total == 5
    assert seen == [(1, 115, 2), (1, 115, 2)]


def test_anomalies_are_counted_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 0),
        ev(T.SAMPLE_ISSUED, 1, "a"),
        ev(T.SAMPLE_ISSUED, 2, "a"),  # duplicate issue: row reused, counted, unmatched
        ev(T.SAMPLE_RECV_NON_FIRST, 3, "a"),  # chunk before first: no delta
        ev(T.SAMPLE_RECV_FIRST, 4, "a"),  # its delta from the chunk: 1
        ev(T.SAMPLE_RECV_FIRST, 5, "a"),  # repeated first: TTFT and a delta again
        ev(T.SAMPLE_COMPLETE, 6, "nobody"),  # unknown -> unmatched
        ev(T.SAMPLE_RECV_FIRST, 6, "nobody"),  # unknown -> unmatched
        ev(T.SAMPLE_ISSUED, 7, ""),  # no uuid -> malformed
        ev(T.SAMPLE_COMPLETE, 8, ""),  # no uuid -> malformed
        ev(T.SAMPLE_COMPLETE, 9, "a", output_tokens=1),
    ]
    with caplog.at_level(logging.WARNING):
        reg, _ = run(events)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    c = snap.counters
    assert c["events_unmatched"] == 3
    assert c["events_malformed"] == 2
    assert c["tracked_samples_issued"] == 2 and c["total_samples_issued"] == 2
    assert c["tracked_samples_completed"] == 1
    assert c["total_samples_completed"] == 2  # "nobody" counts in the total, as upstream
    assert snap.series["ttft_ns"].count == 2  # 4 - 2, 5 - 2
    assert snap.series["chunk_delta_ns"].total == 2  # (4 - 3) + (5 - 4)
    assert snap.series["sample_latency_ns"].total == 7  # 9 - 2 (the re-issue's time)


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
            events.append(err(t, ts, uuid) if t.is_error else ev(t, ts, uuid))
    reg, agg = run(events, batch=batch)
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=agg.n_pending_tasks)
    c = snap.counters
    completed = c["tracked_samples_completed"]
    # a re-issue of a sample in flight counts again, so issued can exceed the rest
    assert c["tracked_samples_issued"] >= completed + agg.n_in_flight
    assert c["total_samples_issued"] >= c["tracked_samples_issued"]
    assert c["total_samples_completed"] >= completed
    assert c["total_samples_failed"] >= c["tracked_samples_failed"]
    assert snap.series["sample_latency_ns"].count == completed
    assert snap.series["osl"].count == completed
    assert snap.series["isl"].count <= c["tracked_samples_issued"]
    assert sum(c[f"tracked_finish_reason_{r}"] for r in ("stop", "other")) == completed
    assert snap.series["sample_latency_ns"].min >= 0
    assert snap.series["chunk_delta_ns"].min >= 0
    assert c["total_duration_ns"] == ts
    assert 0 <= c["legacy_loadgen_window_duration_ns"] <= ts
    assert c["tracked_duration_ns"] >= 0
    assert c["events_out_of_order"] == 0  # timestamps never go backwards here


class _InOrderOnly(AggregatorMetrics):
    """The reference: every batch applied record by record (no chunk receive held back)."""

    def _apply_batched(self, records):  # type: ignore[no-untyped-def]
        self._apply_in_order(records)


def _state(reg: MetricsRegistry, agg: AggregatorMetrics) -> dict[str, object]:
    snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    rows = agg.rows
    return {
        "counters": snap.counters,
        # the held receives' gaps reach the series grouped by sample, not in arrival
        # order: the values must be the same, their order is not a contract
        "series": {n: sorted(reg.series_sampler(n).raw_values().tolist()) for n in snap.series},
        "rows": {
            uuid: (rows.issued[s], rows.recv_first[s], rows.last_recv[s], rows.chunks[s])
            for uuid, s in rows.index.items()
        },
        "log": sorted(agg.sample_log.rows) if agg.sample_log is not None else None,
        "timeline": agg.timeline(),
    }


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [T.SAMPLE_RECV_NON_FIRST] * 24
                + [T.SAMPLE_ISSUED, T.SAMPLE_RECV_FIRST, T.SAMPLE_COMPLETE] * 2
                + [T.ERROR_CLIENT]
                + [T.SESSION_STOP_PERFORMANCE_TRACKING, T.SESSION_START_PERFORMANCE_TRACKING]
            ),
            st.sampled_from(["a", "b", "c", "d", "e", "f", ""]),
            st.integers(-3, 40),  # negative steps: receives earlier than the one before
        ),
        min_size=40,  # batches shorter than 32 records are applied in order anyway
        max_size=300,
    ),
    st.sampled_from([32, 50, 1000]),
    st.one_of(st.none(), st.integers(0, 300)),
)
def test_holding_chunk_receives_back_changes_nothing(
    steps: list[tuple[EventType, str, int]], batch: int, end_at: int | None
) -> None:
    """Batches of >= 32 records hold chunk receives back (chunk_batch), with
    ``hold_receives`` across batches too; whatever the
    order, duplicates, gaps before first receives, timestamps going backwards or
    session events mid-batch (``session.ended`` at ``end_at``), every number equals
    the record-by-record reference."""
    from registry.store.sample_log import SampleLog

    events = [ev(T.SESSION_STARTED, 100), ev(T.SESSION_START_PERFORMANCE_TRACKING, 100)]
    ts = 1000
    for i, (t, uuid, step) in enumerate(steps):
        ts = max(0, ts + step)
        if i == end_at:
            events.append(ev(T.SESSION_ENDED, ts))
        if t.is_session:
            events.append(ev(t, ts))
        elif t.is_error:
            events.append(err(t, ts, uuid))
        elif t is T.SAMPLE_COMPLETE:
            events.append(ev(t, ts, uuid, output_tokens=3, finish_reason="stop"))
        elif t is T.SAMPLE_ISSUED:
            events.append(ev(t, ts, uuid, input_tokens=2))
        else:
            events.append(ev(t, ts, uuid))
    states = []
    # the reference; receives held within each batch; held across batches too (as the
    # service runs it), read with nothing but a snapshot capture to settle them
    for cls, hold in ((_InOrderOnly, False), (AggregatorMetrics, False), (AggregatorMetrics, True)):
        reg = MetricsRegistry()
        agg = cls(reg, streaming=True, sample_log=SampleLog(), hold_receives=hold)
        agg.handle_many(events[:2])
        for i in range(2, len(events), batch):
            agg.handle_many(events[i : i + batch])
        states.append(_state(reg, agg))
    assert states[1] == states[0]
    assert states[2] == states[0]
