"""Test child process: a real MetricsPublisher fed by a registry with the SPEC §6 metric set.

Usage: python tests/support/publisher_child.py ENDPOINT OUT_DIR [--ticks N] [--interval S]
[--no-final] [--seed N] [--run-id ID [--label K=V ...]]

Every tick records a batch of plausible values; after ``--ticks`` ticks it publishes
the final (COMPLETE) snapshot, which lands in OUT_DIR/final_snapshot.json and on the
stream. With ``--no-final`` it ticks until killed. Prints ``ready`` once bound.
``--run-id`` (and ``--label``) put the run id on every snapshot (slot 5).
The exporter tests use it as the producer a bridge or a Prometheus scrape sees; the
lead may switch those tests to ``bench-metrics demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from registry import SessionState
from registry.delivery.publisher import MetricsPublisher
from tests.support.exporter_support import spec_registry


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("endpoint")
    p.add_argument("out_dir")
    p.add_argument("--ticks", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--no-final", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-tick", type=int, default=50)
    p.add_argument("--run-id", default=None)
    p.add_argument("--label", action="append", default=[])
    args = p.parse_args()
    labels = dict(item.split("=", 1) for item in args.label)
    stream_run = {"run_id": args.run_id, "labels": labels} if args.run_id else None
    rng = np.random.default_rng(args.seed)
    reg = spec_registry()
    state = SessionState.LIVE
    publisher = MetricsPublisher(
        reg,
        endpoint=args.endpoint,
        final_snapshot_path=Path(args.out_dir) / "final_snapshot.json",
        interval_s=args.interval,
        stream_run=stream_run,
    )
    publisher.start(lambda: (state, 0))
    print("ready", flush=True)
    n = args.per_tick
    tick = 0
    while args.no_final or tick < args.ticks:
        tick += 1
        reg.increment("total_samples_issued", n)
        reg.increment("tracked_samples_issued", n)
        reg.increment("total_samples_completed", n)
        reg.increment("tracked_samples_completed", n)
        reg.increment("tracked_finish_reason_stop", n)
        reg.increment("tracked_output_tokens", 100 * n)
        reg.set_counter("tracked_duration_ns", int(tick * args.interval * 1e9))
        reg.set_counter("total_duration_ns", int(tick * args.interval * 1e9))
        reg.record_many("ttft_ns", rng.lognormal(18, 0.5, n).astype(np.int64))
        reg.record_many("tpot_ns", rng.lognormal(16, 0.3, n))
        reg.record_many("sample_latency_ns", rng.lognormal(21, 0.4, n).astype(np.int64))
        reg.record_many("chunk_delta_ns", rng.lognormal(16, 0.4, 3 * n).astype(np.int64))
        reg.record_many("isl", rng.integers(50, 2_000, n))
        reg.record_many("osl", rng.integers(2, 512, n))
        await asyncio.sleep(args.interval)
    final = await publisher.publish_final(n_pending_tasks=0)
    print(f"final {final.counter}", flush=True)
    await publisher.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
