"""SnapshotSubscriber over real sockets: garbage in, snapshots out."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import zmq

from registry import (
    CounterStat,
    MetricsSnapshot,
    SeriesStat,
    SessionState,
    SnapshotCodec,
    SnapshotSubscriber,
)
from registry.delivery.snapshot_codec import SNAPSHOT_TOPIC, pad_topic
from registry.transport import BATCH_TOPIC, build_batch
from tests.support.helpers import async_wait_until

CODEC = SnapshotCodec()


def snapshot(counter: int, state: SessionState = SessionState.LIVE) -> MetricsSnapshot:
    return MetricsSnapshot(
        counter=counter,
        timestamp_ns=123,
        state=state,
        n_pending_tasks=0,
        metrics=[
            CounterStat("total_samples_issued", counter * 10),
            SeriesStat("ttft_ns", 2, 30, 10, 20, 500, {"50.0": 10.0}, [((10.0, 20.0), 2)]),
        ],
    )


class RawPublisher:
    """A bare XPUB that never drops: the test decides exactly what goes on the wire.

    Sends are non-blocking and retried on the running loop, so the subscriber
    under test reads in between (no second thread); a deadline bounds a stall.
    """

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.XPUB)
        self.sock.setsockopt(zmq.XPUB_NODROP, 1)  # EAGAIN instead of dropping at the HWM
        self.sock.bind(endpoint)

    async def wait_subscribed(self) -> None:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, self.sock.poll, 5000), "no subscriber"
        assert self.sock.recv()[:1] == b"\x01"

    async def send_all(self, messages: list[list[bytes]], timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for i, frames in enumerate(messages):
            while True:
                try:
                    self.sock.send_multipart(frames, flags=zmq.NOBLOCK)
                    break
                except zmq.Again:
                    assert loop.time() < deadline, f"send stalled at message {i}"
                    await asyncio.sleep(0.0005)  # let the subscriber read

    def close(self) -> None:
        self.sock.close(linger=0)


def malformed_messages(n: int, seed: int) -> Iterator[list[bytes]]:
    """``n`` messages, each wrong in one way that must cost exactly one drop."""
    rng = random.Random(seed)
    good = CODEC.encode(snapshot(1))[1]
    wrong_shapes: list[Any] = [
        [1, 2, 3],
        {"counter": 1},
        "MET",
        [1, 2, "bogus-state", 0, []],
        [1, 2, "live", 0, [["counter", "x"]]],  # counter without value
        [1, 2, "live", 0, [["series", "s", 1, 2, 3]]],  # series cut before percentiles
        [1, 2, "live", 0, [["gauge", "g", 1]]],  # unknown metric tag
        [1, 2, "live", 0, [["counter", "x", "not a number"]]],
        [1.5, 2, "live", 0, []],
        [1, 2, "live", "0", []],
    ]
    kinds = ["random", "truncated", "shape", "topic", "unpadded", "frames", "batch"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "random":
            yield [SNAPSHOT_TOPIC + rng.randbytes(rng.randrange(0, 64))]
        elif kind == "truncated":
            yield [SNAPSHOT_TOPIC + good[: rng.randrange(0, len(good))]]
        elif kind == "shape":
            yield [SNAPSHOT_TOPIC + msgspec.msgpack.encode(rng.choice(wrong_shapes))]
        elif kind == "topic":
            yield [pad_topic(rng.choice(["XYZ", "met", "sample.complete", ""])) + good]
        elif kind == "unpadded":
            yield [b"MET"]  # shorter than a topic
        elif kind == "frames":
            # the old two-frame layout, and three frames: neither is the wire format
            yield [SNAPSHOT_TOPIC, good] if i % 2 else [SNAPSHOT_TOPIC, good, b"extra"]
        else:
            yield [BATCH_TOPIC + rng.randbytes(rng.randrange(1, 32)) + b"\xc1"]


@pytest.mark.parametrize("conflate", [True, False])
def test_10000_malformed_frames_are_counted_then_a_valid_snapshot_lands(
    conflate: bool, ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    seed = random.randrange(2**32)
    bad = list(malformed_messages(10_000, seed))

    async def main() -> None:
        raw = RawPublisher(ipc_endpoint)
        try:
            async with SnapshotSubscriber(ipc_endpoint, conflate=conflate) as sub:
                await raw.wait_subscribed()
                await raw.send_all(bad)
                valid = snapshot(42)
                await raw.send_all([[b"".join(CODEC.encode(valid))]])
                assert await async_wait_until(lambda: sub.latest is not None, timeout=20)
                assert sub.latest == valid, f"seed {seed}"
                assert sub.dropped == 10_000, f"seed {seed}: {sub.last_error}"
                assert sub.terminal is None
        finally:
            raw.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    drop_logs = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(drop_logs) <= 6  # logged at 1, 10, 100, 1000, 10000: not 10,000 lines


def _mlcommons_series(name: str, length: int) -> list[Any]:
    full = ["series", name, 3, 60, 10, 30, 1400, {"50.0": 20.0, "99.0": 30.0}]
    full.append([[[10.0, 20.0], 2], [[20.0, 30.0], 1]])
    if length >= 10:
        full.append(None)  # early_stopping
    if length > 10:
        full.extend([None, "future field", 7][: length - 10])
    return full


@pytest.mark.parametrize("length", [9, 10, 13])
def test_frames_shaped_like_mlcommons_endpoints_decode(length: int, ipc_endpoint: str) -> None:
    """Series arrays of 9 or 10 elements (no ``hdr``), or with extra trailing ones."""
    payload = msgspec.msgpack.encode(
        [
            7,
            1_000_000,
            "complete",
            0,
            [["counter", "n_samples", 3], _mlcommons_series("ttft_ns", length)],
        ]
    )

    async def main() -> None:
        raw = RawPublisher(ipc_endpoint)
        try:
            async with SnapshotSubscriber(ipc_endpoint, conflate=False) as sub:
                await raw.wait_subscribed()
                await raw.send_all(
                    [[SNAPSHOT_TOPIC + payload], [b"".join(build_batch([payload, payload]))]]
                )
                assert await async_wait_until(lambda: sub.received == 3)
                snap = await sub.wait_for_terminal(1)
                assert snap is not None and sub.dropped == 0
                assert snap.state is SessionState.COMPLETE and snap.counter == 7
                assert snap.counters == {"n_samples": 3}
                s = snap.series["ttft_ns"]
                assert (s.count, s.total, s.min, s.max, s.sum_sq) == (3, 60, 10, 30, 1400)
                assert s.percentile(50) == 20.0 and s.hdr is None
                assert s.histogram == [((10.0, 20.0), 2), ((20.0, 30.0), 1)]
        finally:
            raw.close()

    asyncio.run(main())


def test_latest_terminal_listeners_and_timeouts(
    ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        raw = RawPublisher(ipc_endpoint)
        seen: list[int] = []

        def broken(snap: MetricsSnapshot) -> None:
            raise RuntimeError("listener bug")

        try:
            sub = SnapshotSubscriber(ipc_endpoint, conflate=False)
            with pytest.raises(RuntimeError, match="not started"):
                await sub.wait_for_terminal(0)
            async with sub:
                sub.add_listener(broken)
                sub.add_listener(lambda s: seen.append(s.counter))
                await raw.wait_subscribed()
                await raw.send_all([[b"".join(CODEC.encode(snapshot(1)))]])
                assert await async_wait_until(lambda: sub.latest is not None)
                assert await sub.wait_for_terminal(0.05) is None
                first = snapshot(2, SessionState.INTERRUPTED)
                await raw.send_all([[b"".join(CODEC.encode(first))]])
                assert await sub.wait_for_terminal(5) == first
                # a later run on the same endpoint: latest moves on, terminal stays
                await raw.send_all([[b"".join(CODEC.encode(snapshot(3)))]])
                assert await async_wait_until(lambda: sub.latest == snapshot(3))
                assert sub.terminal == first
                assert await sub.wait_for_terminal(0) == first
            assert seen == [1, 2, 3]
        finally:
            raw.close()

    with caplog.at_level(logging.ERROR, logger="registry.delivery.subscriber"):
        asyncio.run(main())
    assert sum("listener" in r.getMessage() for r in caplog.records) == 3
