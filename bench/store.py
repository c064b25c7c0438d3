"""Runs of any length: exact terminal statistics by selection, the raw store, merging runs.

Run: ``.venv/bin/python bench/store.py [--repeats R] [--quick]``. Each figure is the median
of several repeats next to a baseline measured in the same run (alternating); the targets
come from issue 12. One series of 10M lognormal int64 latencies (median 24 ms), registered
as a tail-latency series (percentile grid, early-stopping map and 30-bucket histogram).

1. terminal snapshot of 10M values already folded by live ticks, vs ``numpy.sort`` of the
   same values: target <= 0.6x;
2. the same with the fold of all 10M in the timed step (one capture, then the terminal
   build), vs ``numpy.sort``: report it, no slower than the sort-based terminal it replaces
   (fold + sort + index, measured here too);
3. the same as 1 with all but 8 MiB of the values in the raw store on disk;
4. the merged snapshot of 4 runs x 2.5M values (each with its raw store on disk; what
   ``merge_runs`` computes before writing its files) vs the single 10M terminal snapshot
   of 1 (which also writes nothing): target <= 1.5x; and ``merge_runs`` end to end;
5. RSS per recorded value with the store on, beyond the memory bound (a child process
   records 40M more values after the bound is full): target <= 1 B; baseline: the same
   without a store (8 B per value kept in memory).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path[0] = str(Path(__file__).resolve().parents[1])

from registry import MetricsRegistry, SessionState  # noqa: E402
from registry.delivery.snapshot_codec import snapshot_to_dict  # noqa: E402
from registry.merge import merge_runs, merged_snapshot  # noqa: E402
from registry.store import RawStore  # noqa: E402

HDR = {"hdr_low": 1, "hdr_high": 3_600_000_000_000, "sig_figs": 3}
TICK = 1_000_000  # values folded per live tick while setting up


def lognormal_ints(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).lognormal(17.0, 1.0, n) + 1).astype(np.int64)


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(
    ours: Callable[[], object], base: Callable[[], object], repeats: int
) -> tuple[float, float]:
    a, b = [], []
    for _ in range(repeats):
        a.append(timed(ours))
        b.append(timed(base))
    return statistics.median(a), statistics.median(b)


def registry(store: RawStore | None = None) -> MetricsRegistry:
    reg = MetricsRegistry(raw_store=store)
    reg.register_series("latency_ns", tail_latency=True, **HDR)
    return reg


def folded(values: np.ndarray, store: RawStore | None = None) -> MetricsRegistry:
    reg = registry(store)
    for lo in range(0, values.size, TICK):
        reg.record_many("latency_ns", values[lo : lo + TICK])
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    return reg


def terminal(reg: MetricsRegistry) -> object:
    return reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)


def sort_based_terminal(values: np.ndarray) -> object:
    """What the terminal snapshot did before selection: fold, sort every value, index."""
    reg = registry()
    reg.record_many("latency_ns", values)
    reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)  # the fold
    data = np.sort(values)
    n = data.size
    ranks = [
        int(np.ceil(p / 100 * n)) - 1 for p in (99.9, 99, 97, 95, 90, 80, 75, 50, 25, 10, 5, 1)
    ]
    edges = np.geomspace(max(1, data[0]), data[-1], 31)[1:-1]
    return data[ranks], np.searchsorted(data, np.ceil(edges).astype(np.int64))


def write_run(directory: Path, values: np.ndarray, run_id: str) -> None:
    """A run directory as ``aggregate`` writes it: final snapshot (run block) + raw store."""
    store = RawStore(directory / "raw", memory_bytes=8 << 20)
    reg = folded(values, store)
    snap = terminal(reg)
    reg.finalize_raw_store()
    run = {
        "percentile_method": "nearest-rank",
        "early_stopping": {"confidence": 0.99, "tolerance": 0.0},
        "run_id": run_id,  # one per run: merge refuses the same run twice
        "labels": {},
        "series": {"latency_ns": reg.series_config("latency_ns").describe()},
    }
    (directory / "final_snapshot.json").write_text(
        json.dumps(snapshot_to_dict(snap, run=run))  # type: ignore[arg-type]
    )


_RSS_CHILD = """
import sys, numpy as np
sys.path[0] = {root!r}
from registry import MetricsRegistry, SessionState
from registry.store import RawStore
store = RawStore({tmp!r}, memory_bytes=32 << 20) if {with_store} else None
reg = MetricsRegistry(raw_store=store)
reg.register_series("latency_ns", hdr_low=1, hdr_high=3_600_000_000_000)
rng = np.random.default_rng(1)
chunk = (rng.lognormal(17.0, 1.0, 100_000) + 1).astype(np.int64)

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

def feed(n):
    for _ in range(n // chunk.size):
        reg.record_many("latency_ns", chunk)
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)

feed(8_000_000)  # 64 MB of values: the 32 MiB bound is full
before = rss()
feed(40_000_000)
print((rss() - before) / 40_000_000)
"""


def rss_per_value(with_store: bool) -> float:
    tmp = tempfile.mkdtemp(prefix="bm-rss-")
    try:
        code = _RSS_CHILD.format(root=sys.path[0], tmp=tmp, with_store=with_store)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1M values (smoke test)")
    args = parser.parse_args()
    n = 1_000_000 if args.quick else 10_000_000
    values = lognormal_ints(n, seed=5)
    r = args.repeats

    reg = folded(values)
    ours, base = paired(lambda: terminal(reg), lambda: np.sort(values), r)
    print(
        f"1. terminal snapshot, {n:,} folded values: {ours * 1e3:7.1f} ms  "
        f"(numpy.sort: {base * 1e3:7.1f} ms)  ratio {ours / base:5.2f}x  [target <= 0.6x]"
    )

    def fold_and_terminal() -> None:
        fresh = registry()
        fresh.record_many("latency_ns", values)
        terminal(fresh)

    ours, base = paired(fold_and_terminal, lambda: np.sort(values), r)
    before, base2 = paired(lambda: sort_based_terminal(values), lambda: np.sort(values), r)
    print(
        f"2. fold of {n:,} + terminal snapshot:   {ours * 1e3:7.1f} ms  "
        f"(numpy.sort: {base * 1e3:7.1f} ms)  ratio {ours / base:5.2f}x; the sort-based "
        f"terminal it replaces: {before * 1e3:7.1f} ms ({before / base2:4.2f}x the sort), "
        f"new/old {ours / before:4.2f}  [report; no slower than before]"
    )

    tmp = Path(tempfile.mkdtemp(prefix="bm-store-"))
    try:
        store = RawStore(tmp / "raw", memory_bytes=8 << 20)
        reg = folded(values, store)
        on_disk = reg.series_sampler("latency_ns").values.spilled
        ours, base = paired(lambda: terminal(reg), lambda: np.sort(values), r)
        print(
            f"3. terminal snapshot, {on_disk / n:.0%} of the values in the store: "
            f"{ours * 1e3:7.1f} ms  (numpy.sort: {base * 1e3:7.1f} ms)  ratio {ours / base:5.2f}x"
            "  [report]"
        )

        parts = np.array_split(values, 4)
        dirs = []
        for i, part in enumerate(parts):
            d = tmp / f"lg{i}"
            d.mkdir()
            write_run(d, part, f"bench-lg{i}")
            dirs.append(d)
        single = folded(values)
        ours, base = paired(lambda: merged_snapshot(dirs), lambda: terminal(single), r)
        print(
            f"4. merged snapshot of 4 x {n // 4:,} (raw stores on disk): {ours * 1e3:7.1f} ms  "
            f"(single {n:,} terminal snapshot: {base * 1e3:7.1f} ms)  ratio {ours / base:5.2f}x"
            "  [target <= 1.5x]"
        )
        k = iter(range(10**6))
        ours, base = paired(
            lambda: merge_runs(dirs, tmp / f"merged{next(k)}"), lambda: terminal(single), r
        )
        print(
            f"   merge_runs end to end (+ writing both files, fsync'd): {ours * 1e3:7.1f} ms  "
            f"ratio {ours / base:5.2f}x  [report]"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    with_store = statistics.median(rss_per_value(True) for _ in range(3))
    without = statistics.median(rss_per_value(False) for _ in range(3))
    print(
        f"5. RSS per recorded value beyond the 32 MiB bound: {with_store:5.2f} B with the store  "
        f"(without a store: {without:5.2f} B, ratio {with_store / without:5.3f})  [target <= 1 B]"
    )


if __name__ == "__main__":
    main()
