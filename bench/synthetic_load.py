"""The synthetic load source and the demo pipeline at 2,000 QPS, against the rate they must hold.

Run: ``.venv/bin/python bench/synthetic_load.py`` (about a minute). The load is
``SyntheticLoad(qps=2000, duration_s=10, seed=1)``; its *required event rate* (events
of the run / its length) is the baseline each throughput is divided by, so a ratio
above 1 is headroom. Medians of ``--repeats`` runs:

1. generation only: ``SyntheticLoad.events()`` consumed, no sockets;
2. source capacity: ``drive()`` with every event already due, through a real
   ``EventPublisher`` to a real aggregator process (``bench-metrics aggregate``);
3. aggregator ingest: from the first event sent to the terminal snapshot, same run;
4. the real-time demo (``bench-metrics demo --qps 2000 --duration 10 --no-tui``):
   wall time against the planned 10 s, and whether the report's counts equal what
   the seeded source sends (nothing lost).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path: put the repository root there.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from exporter.cli.commands.demo import aggregator_command  # noqa: E402
from exporter.cli.parent_watch import child_env  # noqa: E402
from registry.delivery.subscriber import SnapshotSubscriber  # noqa: E402
from registry.events.publisher import EventPublisher  # noqa: E402
from registry.events.synthetic import SourceStats, SyntheticLoad, drive  # noqa: E402

LOAD = SyntheticLoad(qps=2000, duration_s=10, seed=1)


def expected() -> SourceStats:
    stats = SourceStats()
    for rec in LOAD.events():
        stats.observe(rec)
    return stats


def generation_s() -> float:
    t0 = time.perf_counter()
    n = sum(1 for _ in LOAD.events())
    assert n > 0
    return time.perf_counter() - t0


async def pipeline_once(tmp: Path) -> tuple[float, float, SourceStats]:
    """(send seconds, first event -> terminal snapshot seconds, what was sent)."""
    events, snaps = f"ipc://{tmp}/events", f"ipc://{tmp}/snapshots"
    args = argparse.Namespace(log_level="WARNING", streaming=True, interval=0.5, run_id="bench")
    cmd = aggregator_command(args, events=events, snapshots=snaps, output_dir=tmp / "out")
    publisher = EventPublisher(events)
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=subprocess.DEVNULL, env=child_env())
    try:
        async with SnapshotSubscriber(snaps) as sub:
            if not await publisher.wait_for_subscriber(30):
                raise RuntimeError("the aggregator did not subscribe")
            t0 = time.perf_counter()
            # t0_ns=0: every event is already due, so drive() sends as fast as it can.
            stats = await drive(LOAD, publisher.send_many, t0_ns=0)
            sent = time.perf_counter() - t0
            if await sub.wait_for_terminal(300) is None:
                raise RuntimeError("no terminal snapshot")
            ingested = time.perf_counter() - t0
        await asyncio.wait_for(proc.wait(), 60)
        return sent, ingested, stats
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        publisher.close()


def demo_once(tmp: Path, want: SourceStats) -> tuple[float, bool, int]:
    out = tmp / "demo-out"
    cmd = [sys.executable, "-c", "import sys; from exporter.cli.main import main; sys.exit(main())"]
    cmd += ["--log-level", "WARNING", "demo", "--qps", f"{LOAD.qps:g}"]
    cmd += ["--duration", f"{LOAD.duration_s:g}", "--seed", str(LOAD.seed), "--no-tui"]
    cmd += ["--output-dir", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=child_env())
    wall = time.perf_counter() - t0
    report = json.loads((out / "result_summary.json").read_text())
    got = report["samples"]["all"]
    same = (got["issued"], got["completed"], got["failed"], got["in_flight"]) == (
        want.issued,
        want.completed,
        want.failed,
        0,
    )
    return wall, same and report["complete"] is True, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    want = expected()
    required = want.events_sent / LOAD.duration_s
    print(
        f"load: {LOAD.qps:g} QPS x {LOAD.duration_s:g} s, seed {LOAD.seed}: {want.issued:,} "
        f"requests, {want.events_sent:,} events; required rate {required:,.0f} events/s"
    )

    gen = statistics.median(generation_s() for _ in range(args.repeats))
    rate = want.events_sent / gen
    print(f"1. generation only:   {rate:>10,.0f} events/s  ({rate / required:.1f}x required)")

    sends, ingests = [], []
    for _ in range(args.repeats):
        tmp = Path(tempfile.mkdtemp(prefix="bm-bench-"))
        try:
            sent, ingested, stats = asyncio.run(pipeline_once(tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        assert stats.events_sent == want.events_sent
        sends.append(sent)
        ingests.append(ingested)
    send_rate = want.events_sent / statistics.median(sends)
    ingest_rate = want.events_sent / statistics.median(ingests)
    print(
        f"2. source capacity:   {send_rate:>10,.0f} events/s  "
        f"({send_rate / required:.1f}x required)"
    )
    print(
        f"3. aggregator ingest: {ingest_rate:>10,.0f} events/s  "
        f"({ingest_rate / required:.1f}x required)"
    )

    walls, lossless = [], []
    for _ in range(args.repeats):
        tmp = Path(tempfile.mkdtemp(prefix="bm-bench-"))
        try:
            wall, ok, rc = demo_once(tmp, want)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        walls.append(wall)
        lossless.append(ok and rc == 0)
    wall = statistics.median(walls)
    print(
        f"4. real-time demo:    {wall:>10.1f} s wall      ({wall / LOAD.duration_s:.2f}x the "
        f"planned {LOAD.duration_s:g} s); counts equal to the source's in "
        f"{sum(lossless)}/{len(lossless)} runs"
    )


if __name__ == "__main__":
    main()
