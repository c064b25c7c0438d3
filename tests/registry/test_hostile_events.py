"""Hostile and careless events (issue 13, items 1-3 and 8): nothing fatal, nothing half-applied.

Each test reproduces the probe: a raw XPUB socket sends hand-built msgpack
maps (not our encoder) into a real aggregator, and the run must go on, count
the bad record in ``events_malformed`` / ``events_out_of_order`` and apply
every good one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import zmq

from registry.aggregator import AggregatorService
from registry.delivery.snapshot import MetricsSnapshot, SessionState
from registry.delivery.snapshot_codec import pad_topic

WAIT_S = 20.0


def rec(kind: str, ts: int, uuid: str = "", **extra: Any) -> dict[str, Any]:
    return {"event_type": kind, "timestamp_ns": ts, "sample_uuid": uuid, **extra}


def sample(uuid: str, t: int, **complete: Any) -> list[dict[str, Any]]:
    return [
        rec("sample.issued", t, uuid, input_tokens=10),
        rec("sample.recv_first", t + 10, uuid),
        rec("sample.complete", t + 50, uuid, finish_reason="stop", **complete),
    ]


def frames_of(records: list[dict[str, Any]]) -> list[bytes]:
    return [pad_topic(str(r["event_type"])) + msgspec.msgpack.encode(r) for r in records]


def run_with(workdir: Path, frames: list[bytes], **service_kw: Any) -> MetricsSnapshot:
    """The final snapshot of a real aggregator that received ``frames`` then session.ended."""
    events_ep = f"ipc://{workdir}/ev.sock"
    ended = frames_of([rec("session.ended", 10**9)])

    async def main() -> MetricsSnapshot:
        service = AggregatorService(
            events_endpoint=events_ep,
            snapshots_endpoint=f"ipc://{workdir}/snap.sock",
            output_dir=workdir / "out",
            streaming=True,
            handle_signals=False,
            **service_kw,
        )
        pub = zmq.Context.instance().socket(zmq.XPUB)
        pub.setsockopt(zmq.SNDHWM, 0)
        pub.bind(events_ep)
        try:
            task = asyncio.create_task(service.run())
            assert await asyncio.to_thread(pub.poll, WAIT_S * 1000), "no subscription"
            pub.recv()
            for f in [*frames, *ended]:
                pub.send(f)
            assert await asyncio.wait_for(task, WAIT_S) == 0
        finally:
            pub.close(linger=0)
        assert service.final_snapshot is not None
        return service.final_snapshot

    return asyncio.run(main())


START = [rec("session.started", 0), rec("session.start_performance_tracking", 0)]


def test_negative_token_counts_are_malformed_not_fatal(workdir: Path) -> None:
    records = [*START, *sample("a", 100)]
    records += sample("bad", 200, output_tokens=-5)[:2]
    records.append(rec("sample.complete", 250, "bad", output_tokens=-5, finish_reason="stop"))
    records += [rec("sample.issued", 300, "neg-in", input_tokens=-1)]
    records += sample("b", 400, output_tokens=7)
    snap = run_with(workdir, frames_of(records))
    c = snap.counters
    assert snap.state is SessionState.COMPLETE
    assert c["events_malformed"] == 2
    assert c["tracked_samples_completed"] == 2  # a and b; "bad"'s completion never applied
    assert c["tracked_output_tokens"] == 7
    assert snap.series["osl"].count == 1


def test_token_counts_beyond_int64_are_rejected_whole(workdir: Path) -> None:
    records = [*START]
    for i in range(8):
        records += sample(f"s{i}", 100 * (i + 1), output_tokens=5)
    records += sample("huge", 5_000)[:2]
    records.append(rec("sample.complete", 5_050, "huge", output_tokens=2**63, finish_reason="stop"))
    records.append(rec("sample.complete", 5_060, "huge", output_tokens=2**64 - 1))
    snap = run_with(workdir, frames_of(records))
    c = snap.counters
    assert c["events_malformed"] == 2
    # applied wholly or not at all: no completion, no osl, no finish reason for "huge"
    assert c["tracked_samples_completed"] == 8
    assert snap.series["osl"].count == 8
    assert c["tracked_finish_reason_stop"] == 8
    assert snap.series["sample_latency_ns"].count == 8


def test_timestamps_going_backwards_are_rejected_and_counted(workdir: Path) -> None:
    records = [*START, *sample("a", 1000)]
    records += [
        rec("sample.issued", 2000, "back"),
        rec("sample.recv_first", 1500, "back"),  # before its issue
        rec("sample.recv_first", 2100, "back"),
        rec("sample.complete", 2050, "back"),  # before its last receive: applied (SPEC §6)
        rec("sample.complete", 2200, "back", output_tokens=3, finish_reason="stop"),  # unmatched
        rec("sample.issued", 10, "early-ts"),  # an old timestamp: fine on its own
    ]
    snap = run_with(workdir, frames_of(records))
    c = snap.counters
    assert c["events_out_of_order"] == 1
    assert c["samples_complete_before_chunk"] == 1
    for name in ("sample_latency_ns", "ttft_ns", "chunk_delta_ns", "tpot_ns"):
        s = snap.series[name]
        assert s.count == 0 or s.min >= 0, name
    assert c["total_duration_ns"] >= 0
    assert snap.series["sample_latency_ns"].count == 2


def test_oversized_frames_and_ids_are_counted_and_skipped(workdir: Path) -> None:
    records = [*START, *sample("a", 100)]
    frames = frames_of(records)
    huge = pad_topic("batch") + msgspec.msgpack.encode([b"\x00" * (2 * 1024 * 1024)])
    long_uuid = frames_of(sample("u" * 100_000, 500))
    frames += [huge, *long_uuid, *frames_of(sample("b", 900))]
    snap = run_with(workdir, frames, max_frame_bytes=1024 * 1024)
    c = snap.counters
    # one oversized frame, three records with a 100,000-character uuid
    assert c["events_malformed"] == 4
    assert c["tracked_samples_completed"] == 2
    assert c["tracked_samples_issued"] == 2


def test_unknown_fields_and_types_are_survivable(workdir: Path) -> None:
    records = [*START, *sample("a", 100)]
    records.append(rec("sample.issued", 200, "x", extra_field={"nested": [1, 2]}, turn=3))
    records.append(rec("sample.issued", 210, "y", worker_id="not-an-int"))
    records.append(rec("sample.issued", 220, "z", data=["NoSuchData", 1]))
    records.append(rec("sample.issued", 230, "w", data=["PromptData", None, "not-a-list"]))
    snap = run_with(workdir, frames_of(records))
    c = snap.counters
    assert c["tracked_samples_issued"] == 2  # a and x: unknown keys are ignored
    assert c["total_samples_issued"] == 2
    assert c["events_malformed"] == 3  # y, z, and w (token ids that are not an array)
