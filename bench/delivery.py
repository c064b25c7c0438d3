"""Delivery path cost: one publisher tick and the final publish, with same-run baselines.

Run: ``.venv/bin/python bench/delivery.py`` (``--quick`` for a smoke run). 20 counters and 6
series of 1M values each; between ticks every series gets 250 fresh values
(1,000 QPS at 0.25 s). Medians of several repeats.

1. live tick = ``build_snapshot`` + ``SnapshotCodec.encode`` + send on the PUB
   socket (a subscriber drains it in another thread), as a fraction of the 0.25 s
   interval, and against ``build_snapshot`` alone (what delivery adds);
2. encoding: msgpack (``SnapshotCodec``) vs the same snapshot as JSON text
   (``json.dumps(snapshot_to_dict(...))``);
3. event-loop stall per tick: longest gap seen by a 1 ms heartbeat while
   ``MetricsPublisher`` ticks (build in its worker thread) vs the same work done
   inline on the loop;
4. ``publish_final`` (exact build + atomic fsync'd file + terminal frame) vs
   the exact ``build_snapshot`` alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zmq

# Run as a script, this file's folder comes first on sys.path: put the repository
# root there so ``registry`` is this checkout's package.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from registry import (  # noqa: E402
    MetricsPublisher,
    MetricsRegistry,
    SessionState,
    SnapshotCodec,
    snapshot_to_dict,
)
from registry.transport import ZmqPublisher  # noqa: E402

INTERVAL_S = 0.25
N_COUNTERS, N_SERIES, FRESH_PER_TICK = 20, 6, 250
LIVE = SessionState.LIVE


def lognormal_ints(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(17.0, 1.0, n).astype(np.int64)


def new_registry(n_values: int) -> MetricsRegistry:
    reg = MetricsRegistry()
    for i in range(N_COUNTERS):
        reg.register_counter(f"counter_{i:02d}")
        reg.increment(f"counter_{i:02d}", 1000 + i)
    for i in range(N_SERIES):
        reg.register_series(f"series_{i}", hdr_low=1, hdr_high=3_600_000_000_000)
        reg.record_many(f"series_{i}", lognormal_ints(n_values, seed=i))
    reg.build_snapshot(state=LIVE, n_pending_tasks=0)  # fold the bulk once
    return reg


class FreshValues:
    """Records the next 250 values per series, as a benchmark would between ticks."""

    def __init__(self, reg: MetricsRegistry, ticks: int) -> None:
        self.reg = reg
        self.batches = iter(
            lognormal_ints(FRESH_PER_TICK * N_SERIES * ticks, seed=99)
            .reshape(ticks, N_SERIES, FRESH_PER_TICK)
            .tolist()
        )

    def __call__(self) -> None:
        batch = next(self.batches)
        for i in range(N_SERIES):
            for v in batch[i]:
                self.reg.record(f"series_{i}", v)


def drain_in_thread(endpoint: str, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(endpoint)
        while not stop.is_set():
            if sock.poll(50):
                sock.recv_multipart()
        sock.close(linger=0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_tick(n_values: int, repeats: int) -> dict[str, float]:
    reg = new_registry(n_values)
    codec = SnapshotCodec()
    fresh = FreshValues(reg, 2 * repeats + 2)
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = f"ipc://{tmp}/bench.sock"
        pub: ZmqPublisher = ZmqPublisher(codec, endpoint, sndhwm=8)
        stop = threading.Event()
        drainer = drain_in_thread(endpoint, stop)
        tick_t, build_t, enc_t, json_t, sizes = [], [], [], [], []
        try:
            for _ in range(repeats):
                fresh()
                gc.collect()
                t0 = time.perf_counter()
                snap = reg.build_snapshot(state=LIVE, n_pending_tasks=0)
                topic, payload = codec.encode(snap)
                pub.send_frame(topic, payload)
                tick_t.append(time.perf_counter() - t0)
                sizes.append(len(payload))
                enc_t.append(timed(lambda s=snap: codec.encode(s)))
                json_t.append(timed(lambda s=snap: json.dumps(snapshot_to_dict(s))))
                # the baseline: the build alone, on equally fresh data
                fresh()
                gc.collect()
                build_t.append(timed(lambda: reg.build_snapshot(state=LIVE, n_pending_tasks=0)))
        finally:
            stop.set()
            drainer.join()
            pub.close(linger_ms=0)
    return {
        "tick": statistics.median(tick_t),
        "build": statistics.median(build_t),
        "encode": statistics.median(enc_t),
        "json": statistics.median(json_t),
        "bytes": statistics.median(sizes),
    }


async def _max_loop_gap(duration_s: float) -> float:
    loop = asyncio.get_running_loop()
    worst, last, end = 0.0, loop.time(), loop.time() + duration_s
    while loop.time() < end:
        await asyncio.sleep(0.001)
        now = loop.time()
        worst = max(worst, now - last)
        last = now
    return worst


def bench_loop_stall(n_values: int, ticks: int) -> tuple[float, float]:
    """Worst heartbeat gap with MetricsPublisher ticking vs the same ticks inline."""
    reg = new_registry(n_values)
    fresh = FreshValues(reg, 4 * ticks + 4)
    interval = 0.05

    async def offloaded() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            pub = MetricsPublisher(
                reg,
                endpoint=f"ipc://{tmp}/stall.sock",
                final_snapshot_path=Path(tmp) / "final.json",
                interval_s=interval,
            )
            pub.add_listener(lambda _s: fresh())
            pub.start(lambda: (LIVE, 0))
            gap = await _max_loop_gap(ticks * interval)
            await pub.publish_final(n_pending_tasks=0)
            await pub.aclose()
            return gap

    async def inline() -> float:
        codec = SnapshotCodec()

        async def ticker() -> None:
            while True:
                fresh()
                snap = reg.build_snapshot(state=LIVE, n_pending_tasks=0)
                codec.encode(snap)
                await asyncio.sleep(interval)

        task = asyncio.create_task(ticker())
        gap = await _max_loop_gap(ticks * interval)
        task.cancel()
        return gap

    return asyncio.run(offloaded()), asyncio.run(inline())


def bench_final(n_values: int, repeats: int) -> tuple[float, float]:
    final_t, build_t = [], []
    for _ in range(repeats):
        reg = new_registry(n_values)
        gc.collect()
        build_t.append(
            timed(lambda r=reg: r.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0))
        )
        del reg
        reg = new_registry(n_values)
        with tempfile.TemporaryDirectory() as tmp:

            async def publish(r: MetricsRegistry = reg, d: str = tmp) -> float:
                pub = MetricsPublisher(
                    r,
                    endpoint=f"ipc://{d}/final.sock",
                    final_snapshot_path=Path(d) / "final_snapshot.json",
                )
                gc.collect()
                t0 = time.perf_counter()
                await pub.publish_final(n_pending_tasks=0)
                elapsed = time.perf_counter() - t0
                await pub.aclose()
                assert pub.final_file_written and pub.final_frame_sent
                return elapsed

            final_t.append(asyncio.run(publish()))
        del reg
    return statistics.median(final_t), statistics.median(build_t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="100k values per series (smoke)")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    shape = f"{N_COUNTERS} counters + {N_SERIES} series x {n:,}"

    r = bench_tick(n, args.repeats)
    print(
        f"live tick ({shape}): {r['tick'] * 1e3:7.2f} ms = "
        f"{r['tick'] / INTERVAL_S:6.2%} of the {INTERVAL_S} s interval  "
        f"(build_snapshot alone: {r['build'] * 1e3:7.2f} ms)  ratio {r['tick'] / r['build']:5.2f}x"
    )
    print(
        f"encode one snapshot ({r['bytes'] / 1024:.1f} KiB msgpack): {r['encode'] * 1e6:7.1f} us  "
        f"(as JSON text: {r['json'] * 1e6:8.1f} us)  speed-up {r['json'] / r['encode']:5.1f}x"
    )
    off, inl = bench_loop_stall(n, max(8, args.repeats))
    print(
        f"worst event-loop stall while ticking: {off * 1e3:7.2f} ms with MetricsPublisher "
        f"(worker thread)  (inline on the loop: {inl * 1e3:7.2f} ms)  ratio {off / inl:5.2f}x"
    )
    fin, build = bench_final(n, max(3, args.repeats // 5))
    print(
        f"publish_final (exact build + fsync'd file + frame): {fin * 1e3:7.1f} ms  "
        f"(exact build_snapshot alone: {build * 1e3:7.1f} ms)  ratio {fin / build:5.2f}x"
    )


if __name__ == "__main__":
    main()
