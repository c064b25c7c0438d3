"""A run far longer than memory (SPEC §11): 10 million tracked samples replayed through a
real ``bench-metrics aggregate`` as fast as it takes them, with a 16 MiB bound on raw values
in memory. Peak RSS stays within 15 % between the 2-million and the 10-million mark, and the
exact final percentiles, early-stopping map and histogram equal numpy's on the same values."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest
import zmq

from registry.core.percentiles import rank_indices
from registry.core.series import display_edges
from registry.delivery.snapshot_codec import SnapshotCodec
from registry.events import EventRecord, EventType
from registry.mlperf.early_stopping import early_stopping_indices
from registry.transport import BATCH_TOPIC
from tests.support.bulk_events import sample_frames
from tests.support.store_runs import WAIT_S, start_aggregate

N = int(os.environ.get("BENCH_METRICS_LONG_RUN_SAMPLES", 10_000_000))
MARK = N // 5
CHUNK = 50_000  # samples sent between two looks at the aggregator's progress
T0 = 10**12


def _session(kind: EventType, ts: int) -> bytes:
    payload = msgspec.msgpack.encode(EventRecord(kind, ts))
    return BATCH_TOPIC + msgspec.msgpack.encode([payload])


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_ten_million_samples_with_flat_memory_and_exact_finals(tmp_path: Path) -> None:
    proc, events = start_aggregate(tmp_path, "long", "--raw-memory-mb", "16", "--no-samples")
    snapshots = f"ipc://{tmp_path}/sock/long.met"
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.bind(events)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.CONFLATE, 1)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(snapshots)
    codec = SnapshotCodec()
    rng = np.random.default_rng(20261201)
    latencies = (rng.lognormal(17.0, 1.0, N) + 1).astype(np.int64)
    isl = rng.integers(1, 4000, N)
    marks: dict[int, int] = {}
    started = time.monotonic()

    def completed(wait_ms: int) -> int | None:
        if not sub.poll(wait_ms):
            return None
        snap = codec.decode(sub.recv()[40:])
        return int(snap.counters["tracked_samples_completed"])

    try:
        deadline = time.monotonic() + WAIT_S
        while not pub.poll(100):
            assert proc.poll() is None and time.monotonic() < deadline, "never subscribed"
        pub.recv()
        pub.send(_session(EventType.SESSION_STARTED, T0))
        pub.send(_session(EventType.SESSION_START_PERFORMANCE_TRACKING, T0))
        done = 0
        for lo in range(0, N, CHUNK):
            hi = min(N, lo + CHUNK)
            for frame in sample_frames(lo, latencies[lo:hi], isl[lo:hi], T0):
                pub.send(frame)
            # as fast as the aggregator takes them: at most two chunks ahead of it
            while done < hi - 2 * CHUNK or (lo < MARK <= hi and done < MARK) or hi == N > done:
                assert proc.poll() is None, proc.communicate()[1]
                got = completed(1000)
                done = got if got is not None else done
                if done >= MARK and MARK not in marks:
                    marks[MARK] = _peak_rss_kib(proc.pid)
        marks[N] = _peak_rss_kib(proc.pid)
        pub.send(_session(EventType.SESSION_ENDED, T0 + N * 1000 + int(latencies.max())))
        _, err = proc.communicate(timeout=WAIT_S * 5)
        assert proc.returncode == 0, err
    finally:
        sub.close(linger=0)
        pub.close(linger=0)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    elapsed = time.monotonic() - started
    growth = marks[N] / marks[MARK] - 1
    print(
        f"{N:,} samples in {elapsed:.1f} s; peak RSS {marks[MARK] / 1024:.0f} MiB at "
        f"{MARK:,}, {marks[N] / 1024:.0f} MiB at {N:,} ({growth:+.1%})"
    )
    assert growth <= 0.15

    doc = json.loads((tmp_path / "long" / "final_snapshot.json").read_text())
    assert doc["state"] == "complete"
    stat = next(m for m in doc["metrics"] if m["name"] == "sample_latency_ns")
    assert stat["count"] == N
    ordered = np.sort(latencies)
    grid = [float(k) for k in stat["percentiles"]]
    want = ordered[rank_indices("nearest-rank", grid, N)].astype(float).tolist()
    assert list(stat["percentiles"].values()) == want
    es = early_stopping_indices(N, grid)
    assert stat["early_stopping_percentiles"] == {
        k: (float(ordered[i]) if i is not None else None) for k, i in es.items()
    }
    edges = display_edges(float(ordered[0]), float(ordered[-1]), 30)
    counts = np.histogram(np.clip(latencies, edges[0], edges[-1]), bins=edges)[0]
    assert [n for _, n in stat["histogram"]] == counts.tolist()
    isl_stat = next(m for m in doc["metrics"] if m["name"] == "isl")
    isl_sorted = np.sort(isl)
    assert list(isl_stat["percentiles"].values()) == (
        isl_sorted[rank_indices("nearest-rank", grid, N)].astype(float).tolist()
    )
    manifest = json.loads((tmp_path / "long" / "raw" / "manifest.json").read_text())
    assert manifest["series"]["sample_latency_ns"]["spilled_while_running"] > N // 2
