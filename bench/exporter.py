"""Exporter cost: the time to render ``/metrics``, and the aggregator's ingest rate while
it is scraped 10 times a second against not scraped, measured in the same run.

Run: ``.venv/bin/python bench/exporter.py [--events N] [--repeats R] [--skip-ingest]``.

Render half. The demo's metric set: the aggregator's own registry (streaming, every
counter and series of SPEC §6, their real HDR ranges) filled with a run of 20,000
samples. Timed, each as the median of many repeats:

- baseline: building that snapshot (``MetricsRegistry.build_snapshot``, one publisher
  tick), which every scrape is a mirror of;
- the first scrape of a new snapshot (HDR decode + bucket regrouping + render);
- a further scrape of the same snapshot (decoded buckets memoised on the view);
- both exposition formats (text 0.0.4, OpenMetrics 1.0).

Ingest half. A producer process sends the same pre-built streaming workload as
``bench/aggregator.py``; the real ``AggregatorService`` ingests it with the
Prometheus mirror attached as ``aggregate --listen`` attaches it (its HTTP server
on the aggregator's loop; ``--own-thread`` measures a server thread instead). In
"scraped" runs a separate scraper process GETs ``/metrics`` 10 times a second
(OpenMetrics, gzip, as Prometheus asks) for the whole run; in "not scraped" runs
nobody does. Runs alternate; medians are compared.
Target (issue 5): scraped / not scraped >= 0.9.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

# Run as a script, this file's folder comes first on sys.path and its own name
# could shadow a package: put the repository root there instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.openmetrics.exposition import (  # noqa: E402
    generate_latest as generate_openmetrics,
)

from exporter.collector import SnapshotCollector  # noqa: E402
from exporter.mirror import ExporterOptions, mirror_service  # noqa: E402
from exporter.parent_watch import arm_from_environment, child_env  # noqa: E402
from exporter.web_config import WebConfig  # noqa: E402
from registry import MetricsRegistry, SessionState  # noqa: E402
from registry.aggregator import AggregatorMetrics, AggregatorService, SessionMachine  # noqa: E402

TARGET = 0.9
SCRAPES_PER_S = 10.0


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- render half ------------------------------------------------------------------------


def demo_registry(n: int = 20_000) -> MetricsRegistry:
    reg = MetricsRegistry()
    AggregatorMetrics(reg, streaming=True, session=SessionMachine())
    rng = np.random.default_rng(0)
    values = {
        "ttft_ns": rng.lognormal(18, 0.6, n).astype(np.int64),
        "tpot_ns": rng.lognormal(16, 0.3, n),
        "sample_latency_ns": rng.lognormal(21, 0.5, n).astype(np.int64),
        "chunk_delta_ns": rng.lognormal(16, 0.4, 8 * n).astype(np.int64),
        "isl": rng.integers(50, 2_000, n),
        "osl": rng.integers(2, 512, n),
    }
    for name in reg.series_names:
        reg.record_many(name, values.get(name, rng.integers(1, 1_000, n)))
    for name in reg.counter_names:
        if reg.counter_info(name).settable:
            reg.set_counter(name, 12_345_678_901)
        else:
            reg.increment(name, n)
    return reg


def render_half(repeats: int) -> None:
    reg = demo_registry()
    snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    collector = SnapshotCollector(labels={"run_id": "bench"})
    registry = CollectorRegistry()
    registry.register(collector)

    def tick() -> None:
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)

    def first_scrape() -> None:
        collector.update(snap)  # a new view: nothing memoised yet
        generate_openmetrics(registry)

    collector.update(snap)
    generate_openmetrics(registry)
    text = generate_latest(registry)
    om = generate_openmetrics(registry)
    n_samples = sum(1 for ln in text.splitlines() if ln and not ln.startswith(b"#"))
    base = median_time(tick, repeats)
    first = median_time(first_scrape, repeats)
    collector.update(snap)
    generate_openmetrics(registry)
    again_om = median_time(lambda: generate_openmetrics(registry), repeats)
    again_text = median_time(lambda: generate_latest(registry), repeats)
    print(
        f"render /metrics for the demo's metric set: {len(reg.counter_names)} counters, "
        f"{len(reg.series_names)} series -> {n_samples} samples, "
        f"{len(text):,} B text / {len(om):,} B OpenMetrics; medians of {repeats}"
    )
    print(f"  baseline: one publisher tick (build_snapshot)    {base * 1e3:8.3f} ms   1.00")
    for label, t in (
        ("first scrape of a new snapshot (OpenMetrics)", first),
        ("further scrape, OpenMetrics 1.0", again_om),
        ("further scrape, text 0.0.4", again_text),
    ):
        print(f"  {label:<47} {t * 1e3:8.3f} ms   {t / base:4.2f}")


# -- ingest half ------------------------------------------------------------------------


def load_aggregator_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_aggregator", ROOT / "bench" / "aggregator.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scrape_loop(url: str) -> int:
    """Child process: GET ``url`` 10 times a second until killed; print the count on exit."""
    arm_from_environment()  # a killed bench must not leave its scraper polling
    headers = {
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        "Accept-Encoding": "gzip",
    }
    n = 0
    next_at = time.monotonic()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        while True:
            try:
                req = urllib.request.Request(url, headers=headers)
                with urllib.request.urlopen(req, timeout=5) as r:
                    r.read()
                n += 1
            except OSError:  # the server is gone at the end of the run
                pass
            next_at += 1.0 / SCRAPES_PER_S
            time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        sys.stdout.write(f"{n}\n")
        return 0


async def timed_service(service: AggregatorService, n_expected: int) -> float:
    marks: dict[SessionState, float] = {}
    service.session.add_listener(lambda old, new: marks.setdefault(new, time.perf_counter()))
    rc = await service.run()
    assert rc == 0 and service.events_applied == n_expected, (rc, service.events_applied)
    return n_expected / (marks[SessionState.DRAINING] - marks[SessionState.LIVE])


OWN_THREAD = False


def one_ingest_run(agg: ModuleType, n_events: int, scraped: bool) -> tuple[float, float]:
    """(events/s, scrapes/s achieved) of one aggregator run with the mirror attached."""
    events = agg.workload(n_events)
    workdir = Path(tempfile.mkdtemp(prefix="bm-bench-exp-"))
    endpoint = f"ipc://{workdir}/events.sock"
    service = AggregatorService(
        events_endpoint=endpoint,
        snapshots_endpoint=f"ipc://{workdir}/snapshots.sock",
        output_dir=workdir / "out",
        streaming=True,
        interval_s=0.25,
        run_id="bench",
        handle_signals=False,
    )
    options = ExporterOptions(
        listen=("127.0.0.1", 0),
        web_config=WebConfig(),
        linger=0.0,
        pushgateway=None,
        push_job="bench",
        namespace="bench",
        stale_after=10.0,
    )
    mirror = mirror_service(service, options, own_thread=OWN_THREAD)
    assert mirror is not None and mirror.url is not None
    scraper = None
    producer = agg.start_producer(endpoint, n_events)
    try:
        if scraped:
            scraper = subprocess.Popen(
                [sys.executable, __file__, "--scrape", mirror.url + "/metrics"],
                stdout=subprocess.PIPE,
                text=True,
                env=child_env(),
            )
            assert scraper.stdout is not None and scraper.stdout.readline().strip() == "ready"
        gc.collect()
        t0 = time.perf_counter()
        rate = asyncio.run(timed_service(service, len(events)))
        elapsed = time.perf_counter() - t0
        scrapes = 0.0
        if scraper is not None:
            scraper.send_signal(signal.SIGINT)
            out, _ = scraper.communicate(timeout=10)
            scrapes = int(out.split()[-1]) / elapsed if out.split() else 0.0
        return rate, scrapes
    finally:
        if scraper is not None and scraper.poll() is None:
            scraper.kill()
        mirror.close()
        producer.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def ingest_half(n_events: int, repeats: int) -> None:
    agg = load_aggregator_bench()
    where = "a server thread" if OWN_THREAD else "the aggregator's loop"
    print(
        f"aggregator ingest with the exporter attached (served from {where}): "
        f"{n_events:,} events/run, {repeats} repeats"
    )
    one_ingest_run(agg, 20_000, False)  # warm-up
    one_ingest_run(agg, 20_000, True)
    quiet: list[float] = []
    scraped: list[float] = []
    rates: list[float] = []
    for i in range(repeats):
        quiet.append(one_ingest_run(agg, n_events, False)[0])
        rate, per_s = one_ingest_run(agg, n_events, True)
        scraped.append(rate)
        rates.append(per_s)
        print(
            f"  run {i + 1}: not scraped {quiet[-1]:>10,.0f} ev/s   "
            f"scraped {scraped[-1]:>10,.0f} ev/s ({per_s:.1f} scrapes/s)"
        )
    q, s = statistics.median(quiet), statistics.median(scraped)
    paired = statistics.median(x / y for x, y in zip(scraped, quiet, strict=True))
    print(f"not scraped (baseline):      {q:>12,.0f} events/s (median)")
    print(f"scraped {statistics.median(rates):.1f}x/s:            {s:>12,.0f} events/s (median)")
    print(f"median of the per-run ratios: {paired:.2f}")
    verdict = "meets" if s / q >= TARGET else "MISSES"
    print(f"ratio scraped / not scraped: {s / q:.2f}  ({verdict} the target >= {TARGET})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=600_000, help="events per ingest run")
    parser.add_argument("--repeats", type=int, default=5, help="ingest runs of each kind")
    parser.add_argument("--render-repeats", type=int, default=200)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument(
        "--own-thread",
        action="store_true",
        help="serve from a server thread instead of the aggregator's loop (the alternative)",
    )
    parser.add_argument("--scrape", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scrape:
        return scrape_loop(args.scrape)
    global OWN_THREAD
    OWN_THREAD = args.own_thread
    render_half(args.render_repeats)
    if not args.skip_ingest:
        ingest_half(args.events, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
