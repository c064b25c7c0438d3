"""MetricsPublisher over real sockets, files and processes."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from registry import (
    MetricsPublisher,
    MetricsRegistry,
    MetricsSnapshot,
    SessionState,
    SnapshotCodec,
    SnapshotSubscriber,
    read_final_file,
    snapshot_to_dict,
)
from tests.support.helpers import async_wait_until

LIVE = SessionState.LIVE


def make_registry(n_counters: int = 3, n_values: int = 1000) -> MetricsRegistry:
    reg = MetricsRegistry()
    for i in range(n_counters):
        reg.register_counter(f"counter_{i}")
    reg.register_series("latency_ns", hdr_low=1, hdr_high=10**9)
    reg.register_series("tpot_ns", hdr_low=1, hdr_high=10**9, dtype=float)
    reg.record_many("latency_ns", list(range(1, n_values + 1)))
    reg.record_many("tpot_ns", [float(v) / 3 for v in range(1, n_values + 1)])
    return reg


def live_state() -> tuple[SessionState, int]:
    return LIVE, 0


def test_live_cadence_then_exactly_one_terminal(tmp_path: Path, ipc_endpoint: str) -> None:
    """Subscriber sees LIVE/DRAINING at the interval, then one terminal, and nothing after."""
    interval = 0.05

    async def main() -> None:
        reg = make_registry()
        state = {"s": LIVE, "pending": 4}
        sent: list[MetricsSnapshot] = []
        seen: list[MetricsSnapshot] = []
        pub = MetricsPublisher(
            reg,
            endpoint=ipc_endpoint,
            final_snapshot_path=tmp_path / "final_snapshot.json",
            interval_s=interval,
        )
        pub.add_listener(sent.append)
        async with SnapshotSubscriber(ipc_endpoint, conflate=False) as sub:
            sub.add_listener(seen.append)
            pub.start(lambda: (state["s"], state["pending"]))
            assert await async_wait_until(lambda: len(seen) >= 8, timeout=10)
            reg.increment("counter_0", 5)
            state["s"] = SessionState.DRAINING
            assert await async_wait_until(
                lambda: seen[-1].state is SessionState.DRAINING, timeout=10
            )
            final = await pub.publish_final(n_pending_tasks=2)
            assert await sub.wait_for_terminal(5) == final
            await pub.aclose()

        # the publisher handed out (and sent) no live snapshot after the terminal one
        assert sent[-1] is final and all(not s.is_terminal for s in sent[:-1])
        assert pub.transport.sent == len(sent)
        # ZeroMQ keeps order on a connection: what the subscriber saw is the tail
        # of what was sent (the first frames may go before it joins)
        assert [s.counter for s in seen] == [s.counter for s in sent][-len(seen) :]
        assert seen[-1] == final and sum(s.is_terminal for s in seen) == 1
        ranks = [s.state.rank for s in seen]
        assert ranks == sorted(ranks), "states only move forward"
        assert final.state is SessionState.COMPLETE and final.n_pending_tasks == 2
        assert final.counters["counter_0"] == 5
        live = [s for s in sent if not s.is_terminal]
        assert all(s.n_pending_tasks == 4 for s in live)
        gaps = [(b.timestamp_ns - a.timestamp_ns) / 1e9 for a, b in itertools.pairwise(live)]
        assert interval * 0.5 < statistics.median(gaps) < interval * 2, gaps

    asyncio.run(main())


def test_final_file_is_the_exact_terminal_snapshot_and_idempotent(tmp_path: Path) -> None:
    async def main() -> None:
        reg = make_registry(n_values=10_001)
        path = tmp_path / "out" / "final_snapshot.json"  # directory created on demand
        pub = MetricsPublisher(reg, endpoint="tcp://127.0.0.1:0", final_snapshot_path=path)
        first, second = await asyncio.gather(
            pub.publish_final(n_pending_tasks=0, interrupted=True),
            pub.publish_final(n_pending_tasks=99),
        )
        assert first is second
        mtime = path.stat().st_mtime_ns
        assert await pub.publish_final(n_pending_tasks=7) is first
        assert path.stat().st_mtime_ns == mtime  # not rewritten
        await pub.aclose()
        assert first.state is SessionState.INTERRUPTED
        on_disk = read_final_file(path)
        assert snapshot_to_dict(on_disk) == snapshot_to_dict(first)
        lat = on_disk.series["latency_ns"]
        assert lat.count == 10_001 and lat.percentile(50) == 5001  # exact nearest rank
        assert pub.final_file_written and pub.final_frame_sent

    asyncio.run(main())


def test_final_file_carries_the_run_block_asked_once(tmp_path: Path) -> None:
    calls: list[int] = []

    def run_info() -> dict[str, Any]:
        calls.append(1)
        return {"run_id": "r7", "labels": {"model": "m"}, "early_stopping": None}

    async def main() -> None:
        reg = MetricsRegistry(percentile_method="numpy-lower")
        reg.register_series("ttft_ns", hdr_low=1, hdr_high=10**9, tail_latency=True)
        reg.record_many("ttft_ns", list(range(1, 100)))
        path = tmp_path / "final_snapshot.json"
        pub = MetricsPublisher(
            reg, endpoint="tcp://127.0.0.1:0", final_snapshot_path=path, run_info=run_info
        )
        pub.start(live_state)
        assert await async_wait_until(lambda: pub.ticks >= 2)
        assert calls == []  # live ticks never ask
        final = await pub.publish_final(n_pending_tasks=0)
        await pub.publish_final(n_pending_tasks=0)
        await pub.aclose()
        doc = json.loads(path.read_text())
        assert list(doc)[-1] == "run" and calls == [1]
        # the registry's settings first; run_info() has the last word
        assert doc["run"] == {
            "percentile_method": "numpy-lower",
            "early_stopping": None,
            "run_id": "r7",
            "labels": {"model": "m"},
        }
        assert read_final_file(path) == final
        es = final.series["ttft_ns"].early_stopping_percentiles
        assert es is not None and es["50.0"] is not None

    asyncio.run(main())


@pytest.mark.parametrize("bad", ["raises", "not json"])
def test_a_bad_run_info_never_costs_the_final_file(
    tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    def run_info() -> dict[str, Any]:
        if bad == "raises":
            raise RuntimeError("no run info today")
        return {"when": object()}

    async def main() -> None:
        path = tmp_path / "final_snapshot.json"
        pub = MetricsPublisher(
            make_registry(),
            endpoint="tcp://127.0.0.1:0",
            final_snapshot_path=path,
            run_info=run_info,
        )
        final = await pub.publish_final(n_pending_tasks=0)
        await pub.aclose()
        assert pub.final_file_written and read_final_file(path) == final
        run = json.loads(path.read_text()).get("run")
        if bad == "raises":  # the registry's settings are still recorded
            assert run == {
                "percentile_method": "nearest-rank",
                "early_stopping": run["early_stopping"],
            }
        else:
            assert run is None

    with caplog.at_level(logging.ERROR, logger="registry.delivery.publisher"):
        asyncio.run(main())
    assert any("run" in r.getMessage() for r in caplog.records)


def test_read_only_directory_logs_and_still_sends_the_terminal_frame(
    read_only_dir: Path, ipc_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        pub = MetricsPublisher(
            make_registry(),
            endpoint=ipc_endpoint,
            final_snapshot_path=read_only_dir / "final_snapshot.json",
            interval_s=0.02,
        )
        async with SnapshotSubscriber(ipc_endpoint) as sub:
            pub.start(live_state)
            assert await async_wait_until(lambda: sub.latest is not None)
            final = await pub.publish_final(n_pending_tasks=0)
            assert await sub.wait_for_terminal(5) == final
        await pub.aclose()
        assert not pub.final_file_written and pub.final_frame_sent
        assert not (read_only_dir / "final_snapshot.json").exists()

    with caplog.at_level(logging.ERROR, logger="registry.delivery.publisher"):
        asyncio.run(main())
    assert any("could not write the final snapshot file" in r.message for r in caplog.records)


def test_broken_socket_still_writes_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        path = tmp_path / "final_snapshot.json"
        pub = MetricsPublisher(
            make_registry(), endpoint="tcp://127.0.0.1:0", final_snapshot_path=path, interval_s=0.01
        )
        pub.start(live_state)
        assert await async_wait_until(lambda: pub.ticks >= 1)
        pub.transport.close()  # the socket breaks under the publisher
        ticks = pub.ticks
        assert await async_wait_until(lambda: pub.ticks >= ticks + 2)  # ticks go on
        final = await pub.publish_final(n_pending_tasks=0)
        await pub.aclose()
        assert pub.final_file_written and not pub.final_frame_sent
        assert read_final_file(path) == final
        assert pub.send_errors >= 3

    with caplog.at_level(logging.ERROR, logger="registry.delivery.publisher"):
        asyncio.run(main())
    assert any("could not send the terminal snapshot frame" in r.message for r in caplog.records)


def test_failing_ticks_and_listeners_are_logged_and_ticking_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        calls = {"n": 0}

        def flaky_state() -> tuple[SessionState, int]:
            calls["n"] += 1
            if calls["n"] % 2 == 0:
                raise RuntimeError("state unavailable")
            return LIVE, 0

        def bad_listener(snap: MetricsSnapshot) -> None:
            raise ValueError("listener bug")

        good: list[MetricsSnapshot] = []
        pub = MetricsPublisher(
            make_registry(),
            endpoint="tcp://127.0.0.1:0",
            final_snapshot_path=tmp_path / "f.json",
            interval_s=0.005,
        )
        pub.add_listener(bad_listener)
        pub.add_listener(good.append)
        pub.start(flaky_state)
        pub.start(flaky_state)  # logged no-op
        assert await async_wait_until(lambda: pub.ticks >= 5 and pub.tick_errors >= 5)
        final = await pub.publish_final(n_pending_tasks=0)
        await pub.aclose()
        assert good[-1] is final
        assert len(good) == pub.ticks + 1
        assert abs(pub.ticks - pub.tick_errors) <= 1  # one thread of ticks, alternating

    with caplog.at_level(logging.WARNING, logger="registry.delivery.publisher"):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("metrics tick failed" in m for m in messages)
    assert any("listener" in m and "failed" in m for m in messages)
    assert any("start ignored" in m for m in messages)


def test_terminal_runtime_state_is_not_sent_live(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        pub = MetricsPublisher(
            make_registry(),
            endpoint="tcp://127.0.0.1:0",
            final_snapshot_path=tmp_path / "f.json",
            interval_s=0.005,
        )
        sent: list[MetricsSnapshot] = []
        pub.add_listener(sent.append)
        pub.start(lambda: (SessionState.COMPLETE, 0))
        assert await async_wait_until(lambda: len(caplog.records) > 0)
        await pub.aclose()
        assert sent == []

    with caplog.at_level(logging.WARNING, logger="registry.delivery.publisher"):
        asyncio.run(main())
    assert sum("live ticks skip it" in r.getMessage() for r in caplog.records) == 1


class GatedRegistry(MetricsRegistry):
    """Live builds wait for a gate, to hold a build in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def capture(self, *, state: SessionState, n_pending_tasks: int) -> Any:
        capture = super().capture(state=state, n_pending_tasks=n_pending_tasks)
        if SessionState(state).is_terminal:
            return capture
        registry = self

        class GatedCapture:
            def build(self) -> MetricsSnapshot:
                registry.entered.set()
                registry.gate.wait(10)
                return capture.build()

        return GatedCapture()


def test_a_build_in_flight_is_never_sent_after_the_terminal(tmp_path: Path) -> None:
    async def main() -> None:
        reg = GatedRegistry()
        reg.register_counter("c")
        sent: list[MetricsSnapshot] = []
        pub = MetricsPublisher(
            reg, endpoint="tcp://127.0.0.1:0", final_snapshot_path=tmp_path / "f.json"
        )
        pub.add_listener(sent.append)
        pub.start(live_state)
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, reg.entered.wait, 5)
        final_task = asyncio.create_task(pub.publish_final(n_pending_tasks=0))
        await asyncio.sleep(0.05)  # give publish_final every chance to overtake the build
        assert not final_task.done(), "the terminal build must wait for the live one"
        reg.gate.set()
        final = await asyncio.wait_for(final_task, 5)
        await pub.aclose()
        assert sent == [final]
        assert final.counter == 2  # the live build (counter 1) finished first, unsent

    asyncio.run(main())


# -- no subscriber, or one that never reads -------------------------------------------

STALLED_SUBSCRIBER = r"""
import sys, zmq
sock = zmq.Context.instance().socket(zmq.SUB)
sock.setsockopt(zmq.RCVHWM, 1)
sock.setsockopt(zmq.SUBSCRIBE, b"")
sock.connect(sys.argv[1])
sock.recv_multipart()          # subscribed for real: a frame arrived
print("stalled", flush=True)
sys.stdin.readline()           # never read until told to
n = 0
while sock.poll(300):
    sock.recv_multipart()
    n += 1
print(n, flush=True)
"""


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc for RSS")
@pytest.mark.parametrize("subscriber", ["none", "never_reads"])
def test_1000_ticks_never_block_and_memory_stays_flat(
    subscriber: str, tmp_path: Path, ipc_endpoint: str
) -> None:
    async def main() -> None:
        reg = make_registry(n_counters=1500)  # ~40 KB frames
        pub = MetricsPublisher(
            reg,
            endpoint=ipc_endpoint,
            final_snapshot_path=tmp_path / "f.json",
            interval_s=0.0005,
        )
        loop = asyncio.get_running_loop()
        proc = None
        if subscriber == "never_reads":
            proc = subprocess.Popen(
                [sys.executable, "-c", STALLED_SUBSCRIBER, ipc_endpoint],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        try:
            pub.start(live_state)
            if proc is not None:
                assert proc.stdout is not None
                line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 10)
                assert line.strip() == "stalled"
            assert await async_wait_until(lambda: pub.ticks >= 100, timeout=20)
            assert pub.last_snapshot is not None
            frame_size = len(SnapshotCodec().encode(pub.last_snapshot)[1])
            before, start_ticks = _rss_bytes(), pub.ticks
            assert await async_wait_until(lambda: pub.ticks >= start_ticks + 1000, timeout=30)
            growth = _rss_bytes() - before
            await pub.publish_final(n_pending_tasks=0)
            await pub.aclose()
            # Queueing every frame would cost 1000 x frame_size; allow a fraction of that.
            assert frame_size > 30_000
            assert growth < 30 * frame_size, (growth, frame_size)
            assert pub.tick_errors == 0
            if proc is not None:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write("drain\n")
                proc.stdin.flush()
                queued = int(await loop.run_in_executor(None, proc.stdout.readline))
                assert queued < 100, f"{queued} frames reached a stalled subscriber"
        finally:
            if proc is not None:
                proc.kill()
                proc.communicate()

    asyncio.run(main())
