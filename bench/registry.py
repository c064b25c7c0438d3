"""Registry speed and memory, each figure against a baseline measured in the same run.

Run: ``.venv/bin/python bench/registry.py`` (or ``make bench``). Prints the median of
several repeats for each figure and its ratio to the baseline; the targets come from
the registry issue:

1. record throughput (``registry.record`` per value + one ``build_snapshot``) vs
   ``hdrh`` ``record_value`` per value: target >= 8x faster;
2. live snapshot of 6 series x 1M values vs the per-value HDR approach
   (``get_value_at_percentile`` over the grid + a walk of the recorded iterator per
   series): target >= 50x faster. Each tick folds 250 fresh values per series
   (1,000 QPS at 0.25 s), so no cache makes it free;
3. terminal (exact) snapshot of one 10M-value series vs ``numpy.sort`` of the same
   array: target <= 1.2x the sort; once with the default settings, once as upstream
   runs it (numpy-lower percentiles, a tail-latency series with its early-stopping map);
4. memory per recorded integer value after a snapshot: target <= 9 bytes.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

# Run as a script, this file's folder comes first on sys.path and its own name
# would shadow the ``registry`` package: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from registry import DEFAULT_PERCENTILES, MetricsRegistry, SessionState  # noqa: E402

HDR_LOW, HDR_HIGH, SIG_FIGS = 1, 3_600_000_000_000, 3


def lognormal_ints(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(17.0, 1.0, n).astype(np.int64)


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired(
    ours: Callable[[], object], baseline: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median times of ``ours`` and ``baseline``, run alternately so that load from
    other processes on a shared machine hits both alike."""
    ours_times, base_times = [], []
    for _ in range(repeats):
        ours_times.append(timed(ours))
        base_times.append(timed(baseline))
    return statistics.median(ours_times), statistics.median(base_times)


def new_registry(names: list[str], *, upstream_like: bool = False) -> MetricsRegistry:
    """Default settings, or upstream's: numpy-lower percentiles, early stopping on every series."""
    reg = MetricsRegistry(percentile_method="numpy-lower") if upstream_like else MetricsRegistry()
    for name in names:
        reg.register_series(
            name, hdr_low=HDR_LOW, hdr_high=HDR_HIGH, sig_figs=SIG_FIGS, tail_latency=upstream_like
        )
    return reg


def bench_record(values: list[int], repeats: int) -> tuple[float, float]:
    def ours() -> None:
        reg = new_registry(["lat"])
        record = reg.record
        for v in values:
            record("lat", v)
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)

    def baseline() -> None:
        hist = HdrHistogram(HDR_LOW, HDR_HIGH, SIG_FIGS)
        record_value = hist.record_value
        for v in values:
            record_value(v)

    return paired(ours, baseline, repeats)


def bench_live(n_values: int, repeats: int) -> tuple[float, float]:
    names = [f"s{i}" for i in range(6)]
    reg = new_registry(names)
    data = {name: lognormal_ints(n_values, seed=i) for i, name in enumerate(names)}
    for name in names:
        reg.record_many(name, data[name])
    reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)  # fold the bulk once
    fresh = lognormal_ints(250 * 6 * (repeats + 1), seed=99).reshape(-1, 6, 250)
    tick = iter(fresh)

    def ours() -> None:
        batch = next(tick)
        for i, name in enumerate(names):
            for v in batch[i].tolist():
                reg.record(name, v)
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)

    hists = []
    for name in names:
        hist = HdrHistogram(HDR_LOW, HDR_HIGH, SIG_FIGS)
        counts = np.ctypeslib.as_array(hist.counts)
        for v in data[name].tolist():
            hist.record_value(v)
        assert int(counts.sum()) == n_values
        hists.append(hist)

    def baseline() -> None:
        for hist in hists:
            [hist.get_value_at_percentile(p) for p in DEFAULT_PERCENTILES]
            for _ in hist.get_recorded_iterator():
                pass

    return paired(ours, baseline, repeats)


def bench_terminal(
    n_values: int, repeats: int, *, upstream_like: bool = False
) -> tuple[float, float]:
    data = lognormal_ints(n_values, seed=5)
    ours_times, base_times = [], []
    for _ in range(repeats):  # alternately, like ``paired``
        reg = new_registry(["lat"], upstream_like=upstream_like)
        reg.record_many("lat", data)
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
        gc.collect()
        t0 = time.perf_counter()
        reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
        ours_times.append(time.perf_counter() - t0)
        del reg
        base_times.append(timed(lambda: np.sort(data)))
    return statistics.median(ours_times), statistics.median(base_times)


def bench_memory(n_values: int) -> float:
    values = lognormal_ints(n_values, seed=11).tolist()
    gc.collect()
    tracemalloc.start()
    reg = new_registry(["lat"])
    record = reg.record
    for v in values:
        record("lat", v)
    reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    gc.collect()
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / n_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    n_record, n_live, n_terminal = 1_000_000 // scale, 1_000_000 // scale, 10_000_000 // scale

    values = lognormal_ints(n_record, seed=1).tolist()
    ours, base = bench_record(values, args.repeats)
    print(
        f"record {n_record:,} values + 1 snapshot: {ours * 1e3:8.1f} ms  "
        f"(hdrh record_value: {base * 1e3:8.1f} ms)  speed-up {base / ours:6.1f}x  [target >= 8x]"
    )
    ours, base = bench_live(n_live, args.repeats)
    print(
        f"live tick, 6 series x {n_live:,}:        {ours * 1e3:8.2f} ms  "
        f"(per-value HDR: {base * 1e3:8.1f} ms)  speed-up {base / ours:6.1f}x  [target >= 50x]"
    )
    ours, base = bench_terminal(n_terminal, args.repeats)
    print(
        f"terminal snapshot, {n_terminal:,} values: {ours * 1e3:8.1f} ms  "
        f"(numpy.sort: {base * 1e3:8.1f} ms)  ratio {ours / base:6.2f}x  [target <= 1.2x]"
    )
    ours, base = bench_terminal(n_terminal, args.repeats, upstream_like=True)
    print(
        f"  same, numpy-lower + early stopping:  {ours * 1e3:8.1f} ms  "
        f"(numpy.sort: {base * 1e3:8.1f} ms)  ratio {ours / base:6.2f}x  [target <= 1.2x]"
    )
    per_value = bench_memory(n_record)
    print(
        f"memory per recorded int value:       {per_value:8.2f} bytes  "
        f"(int64 payload: 8 bytes)  ratio {per_value / 8:6.2f}x  [target <= 9 bytes]"
    )


if __name__ == "__main__":
    main()
