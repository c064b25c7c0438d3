"""``report --html`` and ``compare`` on runs of 1M samples: time and size (issue 25).

Run: ``.venv/bin/python bench/report.py [--samples N] [--repeats R]``. Two run directories
of N samples each (default 1,000,000) are written as ``aggregate`` writes them: the
aggregator's own series registration, every value folded through a ``MetricsRegistry``
with a raw store, the terminal snapshot with its run block, and ``samples.parquet``
(zstd, 65,536-row groups) whose columns hold the same per-sample values. Streaming:
~8 chunk gaps a sample, so the chunk-gap series has ~8N values. Then, as real processes
(interpreter start-up and imports included), median of R:

1. ``bench-metrics report --html OUT RUN``: seconds and bytes; targets <= 10 s, <= 5 MB;
2. ``bench-metrics compare BASE RUN``: seconds; ``compare --html``: seconds and bytes;

each next to the baseline measured in the same run: reading the same Parquet file(s)
with pyarrow alone (``pq.read_table``, in-process), and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from registry import MetricsRegistry, SessionState  # noqa: E402
from registry.aggregator.metrics import _SERIES, TAIL_LATENCY_SERIES  # noqa: E402
from registry.delivery.snapshot_codec import snapshot_to_dict  # noqa: E402
from registry.store import RawStore  # noqa: E402
from registry.store.samples import ROW_GROUP_ROWS, SAMPLES_SCHEMA  # noqa: E402

CHUNKS = 8
TICK = 1_000_000
BENCH = [str(Path(sys.executable).with_name("bench-metrics"))]


def make_run(directory: Path, n: int, seed: int, slower: float) -> None:
    """A streaming run of ``n`` samples at ~2,000/s (see the module docstring)."""
    rng = np.random.default_rng(seed)
    issued = np.cumsum(rng.exponential(1 / 2000, n) * 1e9).astype(np.int64) + 10**9
    ttft = (rng.lognormal(np.log(40e6 * slower), 0.5, n)).astype(np.int64) + 1
    tpot = rng.lognormal(np.log(4e6), 0.2, n)
    osl = rng.lognormal(np.log(80), 0.6, n).astype(np.int64) + 1
    isl = rng.lognormal(np.log(600), 0.8, n).astype(np.int64) + 1
    latency = ttft + (tpot * (osl - 1)).astype(np.int64)
    gaps = (np.repeat(tpot * 6, CHUNKS) * rng.lognormal(0, 0.3, n * CHUNKS)).astype(np.int64)
    values = {
        "sample_latency_ns": latency,
        "isl": isl,
        "osl": osl,
        "ttft_ns": ttft,
        "chunk_delta_ns": gaps + 1,
        "tpot_ns": tpot,
    }
    store = RawStore(directory / "raw", memory_bytes=64 << 20)
    reg = MetricsRegistry(raw_store=store)
    settings = {}
    for name, dtype, bounds in _SERIES:
        reg.register_series(name, dtype=dtype, tail_latency=name in TAIL_LATENCY_SERIES, **bounds)
        settings[name] = reg.series_config(name).describe()
    for name, v in values.items():
        for lo in range(0, v.size, TICK):
            reg.record_many(name, v[lo : lo + TICK])
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    reg.finalize_raw_store()
    start = int(issued[0]) - 10**8
    end = int((issued + latency).max())
    run = {
        "percentile_method": "nearest-rank",
        "early_stopping": {"confidence": 0.99, "tolerance": 0.0},
        "run_id": f"bench-{seed}",
        "labels": {},
        "streaming": True,
        "series": settings,
        "timeline": {"session_start_ns": start, "latest_event_ns": end, "windows": [[start, end]]},
        "samples": "samples.parquet",
    }
    (directory / "final_snapshot.json").write_text(json.dumps(snapshot_to_dict(snap, run=run)))
    cols = {
        "run_id": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, np.int32)), pa.array([run["run_id"]])
        ),
        "sample_uuid": pa.array([f"{i:032x}" for i in range(n)]),
        "conversation_id": pa.nulls(n, pa.string()),
        "turn": pa.nulls(n, pa.int64()),
        "worker_id": pa.array(rng.integers(0, 8, n)),
        "window": pa.array(np.zeros(n, np.int32)),
        "issued_ns": pa.array(issued),
        "first_ns": pa.array(issued + ttft),
        "complete_ns": pa.array(issued + latency),
        "ttft_ns": pa.array(ttft),
        "latency_ns": pa.array(latency),
        "tpot_ns": pa.array(tpot),
        "n_chunks": pa.array(np.full(n, CHUNKS + 1, np.int32)),
        "isl": pa.array(isl),
        "osl": pa.array(osl),
        "finish_reason": pa.array(["stop"] * n),
        "failed": pa.array(np.zeros(n, bool)),
        "error_type": pa.nulls(n, pa.string()),
    }
    table = pa.Table.from_arrays([cols[f.name] for f in SAMPLES_SCHEMA], schema=SAMPLES_SCHEMA)
    pq.write_table(
        table, directory / "samples.parquet", compression="zstd", row_group_size=ROW_GROUP_ROWS
    )


CPU: dict[str, list[float]] = {}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_process(args: list[str], name: str) -> float:
    """Wall seconds of the process; its CPU seconds (user + sys) go to ``CPU[name]``
    (on a shared machine the wall time carries everyone else's load, the CPU time not)."""
    c0 = _cpu()
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    took = time.perf_counter() - t0
    CPU.setdefault(name, []).append(_cpu() - c0)
    assert done.returncode == 0, done.stderr[-2000:]
    return took


def read_parquet(*paths: Path) -> float:
    t0 = time.perf_counter()
    for p in paths:
        pq.read_table(p)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        base, other = root / "base", root / "run"
        t0 = time.perf_counter()
        for d, seed, slower in ((base, 1, 1.0), (other, 2, 1.02)):
            d.mkdir()
            make_run(d, opts.samples, seed, slower)
        print(f"2 runs of {opts.samples:,} samples written in {time.perf_counter() - t0:.1f} s")
        page, cmp_page = root / "report.html", root / "compare.html"
        rows: dict[str, list[float]] = {
            k: [] for k in ("report", "compare", "cmp_html", "pq1", "pq2")
        }
        for _ in range(opts.repeats):
            rows["pq1"].append(read_parquet(base / "samples.parquet"))
            rows["report"].append(
                timed_process([*BENCH, "report", "--html", str(page), str(base)], "report")
            )
            rows["pq2"].append(read_parquet(base / "samples.parquet", other / "samples.parquet"))
            rows["compare"].append(
                timed_process([*BENCH, "compare", str(base), str(other)], "compare")
            )
            rows["cmp_html"].append(
                timed_process(
                    [*BENCH, "compare", "--html", str(cmp_page), str(base), str(other)], "cmp_html"
                )
            )
        med = {k: statistics.median(v) for k, v in rows.items()}
        cpu = {k: statistics.median(v) for k, v in CPU.items()}
        mb = page.stat().st_size / 1e6
        cmb = cmp_page.stat().st_size / 1e6
        print(f"median of {opts.repeats}; baseline: pyarrow pq.read_table of the same Parquet")
        print(f"load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(
            f"report --html    {med['report']:6.2f} s  {mb:5.2f} MB   "
            f"baseline {med['pq1']:.3f} s  ratio {med['report'] / med['pq1']:.0f}x   "
            f"target <= 10 s, <= 5 MB: {'met' if med['report'] <= 10 and mb <= 5 else 'MISSED'}"
        )
        print(f"                 CPU {cpu['report']:.2f} s (user + sys)")
        print(
            f"compare          {med['compare']:6.2f} s             "
            f"baseline {med['pq2']:.3f} s  ratio {med['compare'] / med['pq2']:.0f}x   "
            f"target <= 10 s: {'met' if med['compare'] <= 10 else 'MISSED'}"
        )
        print(f"                 CPU {cpu['compare']:.2f} s (user + sys)")
        print(
            f"compare --html   {med['cmp_html']:6.2f} s  {cmb:5.2f} MB   "
            f"baseline {med['pq2']:.3f} s  ratio {med['cmp_html'] / med['pq2']:.0f}x"
        )
        print(f"                 CPU {cpu['cmp_html']:.2f} s (user + sys)")


if __name__ == "__main__":
    main()
