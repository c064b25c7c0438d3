"""The synthetic load source: deterministic, well-formed event sequences, real-time drive."""

from __future__ import annotations

import asyncio
import itertools
import math
import statistics
import time
from collections import defaultdict

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.events import EventCodec, EventRecord, EventType
from registry.events.data import ErrorData, PromptData, TextModelOutput
from registry.events.synthetic import SourceStats, SyntheticLoad, drive

SAMPLE_ORDER = {
    EventType.SAMPLE_ISSUED: 0,
    EventType.SAMPLE_RECV_FIRST: 1,
    EventType.SAMPLE_RECV_NON_FIRST: 2,
    EventType.ERROR_CLIENT: 3,
    EventType.SAMPLE_COMPLETE: 4,
}


def by_sample(events: list[EventRecord]) -> dict[str, list[EventRecord]]:
    out: dict[str, list[EventRecord]] = defaultdict(list)
    for e in events:
        if e.sample_uuid:
            out[e.sample_uuid].append(e)
    return out


def check_well_formed(load: SyntheticLoad, events: list[EventRecord]) -> None:
    """The invariants any benchmark's event stream must keep (SPEC §5)."""
    stamps = [e.timestamp_ns for e in events]
    assert stamps == sorted(stamps), "events are not in timestamp order"
    kinds = [e.event_type for e in events]
    assert kinds[0] is EventType.SESSION_STARTED
    assert kinds[-2:] == [EventType.SESSION_STOP_PERFORMANCE_TRACKING, EventType.SESSION_ENDED]
    assert kinds.count(EventType.SESSION_START_PERFORMANCE_TRACKING) == 1
    assert all(not e.sample_uuid for e in events if e.event_type.is_session)
    reasons = {r for r, w in load.finish_reasons if w > 0}
    for uid, evs in by_sample(events).items():
        order = [SAMPLE_ORDER[e.event_type] for e in evs]
        assert order == sorted(order), f"{uid}: events out of order: {order}"
        assert evs[0].event_type is EventType.SAMPLE_ISSUED
        prompt = evs[0].data
        assert isinstance(prompt, PromptData)  # upstream's shape: the prompt as token ids
        assert prompt.n_token_ids is not None and 1 <= prompt.n_token_ids <= load.isl_max
        assert prompt.text is None and not prompt.has_messages
        assert evs[-1].event_type is EventType.SAMPLE_COMPLETE
        assert [e.event_type for e in evs].count(EventType.SAMPLE_ISSUED) == 1
        assert [e.event_type for e in evs].count(EventType.SAMPLE_COMPLETE) == 1
        assert len({e.worker_id for e in evs}) == 1
        errors = [e for e in evs if e.event_type.is_error]
        done = evs[-1]
        if errors:
            assert len(errors) == 1 and isinstance(errors[0].data, ErrorData)
            assert errors[0].data.error_type and errors[0].data.error_message
            # as upstream sends a failed completion: no data, no finish reason
            assert done.data is None
            assert done.finish_reason is msgspec.UNSET and done.output_tokens is msgspec.UNSET
            continue
        assert done.finish_reason in reasons
        osl = done.output_tokens
        assert isinstance(osl, int) and 1 <= osl <= load.osl_max
        assert isinstance(done.data, TextModelOutput)
        output = done.data.output_value()
        text = output if isinstance(output, str) else "".join(output)
        assert len(text.split()) == osl  # one word per token
        chunks = sum(1 for e in evs if e.event_type.value.startswith("sample.recv"))
        if load.streaming:
            assert evs[1].event_type is EventType.SAMPLE_RECV_FIRST
            assert chunks == 1 + math.ceil((osl - 1) / load.tokens_per_chunk)
            assert isinstance(output, tuple) and len(output) == chunks  # one string per chunk
        else:
            assert chunks == 0


def test_same_seed_same_sequence_other_seed_differs() -> None:
    load = SyntheticLoad(qps=500, duration_s=2, seed=7, error_rate=0.05)
    a = list(load.events(t0_ns=123))
    b = list(load.events(t0_ns=123))
    assert a == b
    assert len(a) > 1000
    other = list(SyntheticLoad(qps=500, duration_s=2, seed=8, error_rate=0.05).events(123))
    assert other != a


def test_start_time_only_shifts_timestamps() -> None:
    load = SyntheticLoad(qps=300, duration_s=1, seed=3)
    base = list(load.events(0))
    shifted = list(load.events(10**12))
    assert len(base) == len(shifted)
    for x, y in zip(base, shifted, strict=True):
        assert y.timestamp_ns - x.timestamp_ns == 10**12
        assert (x.event_type, x.sample_uuid, x.output_tokens) == (
            y.event_type,
            y.sample_uuid,
            y.output_tokens,
        )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    qps=st.floats(20, 400),
    streaming=st.booleans(),
    error_rate=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    tokens_per_chunk=st.integers(1, 9),
    osl_median=st.floats(1, 40),
)
def test_every_sequence_is_well_formed(
    seed: int,
    qps: float,
    streaming: bool,
    error_rate: float,
    tokens_per_chunk: int,
    osl_median: float,
) -> None:
    load = SyntheticLoad(
        qps=qps,
        duration_s=0.5,
        seed=seed,
        streaming=streaming,
        error_rate=error_rate,
        tokens_per_chunk=tokens_per_chunk,
        osl_median=osl_median,
        osl_max=200,
    )
    events = list(load.events())
    check_well_formed(load, events)
    stats = SourceStats()
    for e in events:
        stats.observe(e)
    assert stats.events_sent == len(events)
    assert stats.issued == stats.completed  # every request completes, failed ones too
    failed = sum(1 for e in events if e.event_type.is_error)
    assert stats.failed == failed
    if error_rate == 0.0:
        assert stats.failed == 0
    if error_rate == 1.0:
        assert stats.failed == stats.issued and stats.output_tokens == 0


def test_distributions_follow_the_configuration() -> None:
    load = SyntheticLoad(
        qps=1000,
        duration_s=5,
        seed=11,
        ttft_median_ms=30,
        ttft_sigma=0.4,
        osl_median=50,
        tokens_per_chunk=5,
        error_rate=0.1,
        finish_reasons=(("stop", 3), ("length", 1)),
    )
    events = list(load.events())
    samples = by_sample(events)
    n = len(samples)
    # Poisson count: mean 5000, sd ~71; 5 sd either side.
    assert abs(n - 5000) < 5 * math.sqrt(5000)
    issue_times = sorted(e.timestamp_ns for e in events if e.event_type is EventType.SAMPLE_ISSUED)
    gaps = [b - a for a, b in itertools.pairwise(issue_times)]
    assert statistics.mean(gaps) == pytest.approx(1e6, rel=0.05)  # 1 ms at 1000 QPS
    ttfts = [
        evs[1].timestamp_ns - evs[0].timestamp_ns
        for evs in samples.values()
        if evs[1].event_type is EventType.SAMPLE_RECV_FIRST
    ]
    assert statistics.median(ttfts) == pytest.approx(30e6, rel=0.05)
    osls = [evs[-1].output_tokens for evs in samples.values() if evs[-1].output_tokens]  # type: ignore[misc]
    assert statistics.median(osls) == pytest.approx(50, rel=0.08)
    failed = sum(1 for evs in samples.values() if any(e.event_type.is_error for e in evs))
    assert failed / n == pytest.approx(0.1, abs=0.02)
    reasons = [evs[-1].finish_reason for evs in samples.values() if evs[-1].finish_reason]
    assert set(reasons) == {"stop", "length"}
    assert reasons.count("stop") / len(reasons) == pytest.approx(0.75, abs=0.03)
    workers = {e.worker_id for e in events if e.worker_id is not msgspec.UNSET}
    assert workers == set(range(load.n_workers))


def test_warmup_requests_are_issued_before_tracking_starts() -> None:
    load = SyntheticLoad(qps=400, duration_s=1, warmup_s=0.25, seed=2)
    events = list(load.events())
    start = next(e for e in events if e.event_type is EventType.SESSION_START_PERFORMANCE_TRACKING)
    assert start.timestamp_ns == 250_000_000
    pos = events.index(start)
    issued_before = [e for e in events[:pos] if e.event_type is EventType.SAMPLE_ISSUED]
    issued_after = [e for e in events[pos:] if e.event_type is EventType.SAMPLE_ISSUED]
    assert issued_before and issued_after
    assert all(e.timestamp_ns <= start.timestamp_ns for e in issued_before)


def test_events_survive_the_wire_codec() -> None:
    codec = EventCodec()
    events = list(SyntheticLoad(qps=200, duration_s=0.5, seed=5, error_rate=0.3).events(99))
    for e in events:
        topic, payload = codec.encode(e)
        assert topic.rstrip(b"\0").decode() == e.event_type.value
        assert codec.decode(payload) == e


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("qps", 0),
        ("qps", math.inf),
        ("duration_s", -1),
        ("error_rate", 1.5),
        ("tokens_per_chunk", 0),
        ("ttft_sigma", -0.1),
        ("warmup_s", 30.0),
        ("finish_reasons", ()),
        ("finish_reasons", (("stop", 0.0),)),
    ],
)
def test_bad_configuration_is_rejected_with_its_name(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        SyntheticLoad(**{field: value})  # type: ignore[arg-type]


def test_drive_sends_everything_at_its_scheduled_time() -> None:
    load = SyntheticLoad(qps=400, duration_s=0.4, seed=9, error_rate=0.1)
    sent: list[tuple[int, EventRecord]] = []

    sizes: list[int] = []

    def sink(batch: list[EventRecord]) -> None:
        at = time.monotonic_ns()
        sent.extend((at, rec) for rec in batch)
        sizes.append(len(batch))

    t0 = time.monotonic_ns() + 20_000_000
    stats = asyncio.run(drive(load, sink, t0_ns=t0, max_batch=8))
    assert max(sizes) <= 8
    expected = list(load.events(t0))
    assert [r for _, r in sent] == expected
    # Never early; the sender's lateness stays small on an idle-enough machine.
    assert all(at >= rec.timestamp_ns for at, rec in sent)
    lateness = sorted(at - rec.timestamp_ns for at, rec in sent)
    assert lateness[len(lateness) // 2] < 50_000_000
    assert stats.events_sent == len(expected)
    assert stats.issued == stats.completed > stats.failed > 0


def test_drive_awaits_an_async_sink_and_stops_on_request() -> None:
    load = SyntheticLoad(qps=500, duration_s=5, seed=1)
    got: list[EventRecord] = []

    async def main() -> SourceStats:
        stop = asyncio.Event()

        async def sink(batch: list[EventRecord]) -> None:
            await asyncio.sleep(0)
            got.extend(batch)
            if len(got) >= 300:
                stop.set()

        return await drive(load, sink, stop=stop, max_batch=50)

    stats = asyncio.run(main())
    assert len(got) == stats.events_sent
    assert 300 <= len(got) < 350  # nothing sent after the stop
    assert got[-1].event_type is not EventType.SESSION_ENDED
    assert stats.in_flight > 0  # stopped mid-run: some requests never completed
