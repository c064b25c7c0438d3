"""Exporter cost: /metrics render time; the snapshot ticks and a normal scrape while 500
clients scrape at once; the aggregator's ingest rate scraped 10 times a second against not
scraped. Every figure is measured in the same run as its baseline.

Run: ``.venv/bin/python bench/exporter.py [--events N] [--repeats R] [--flood-repeats F]
[--skip-ingest] [--skip-flood]``.

Render half. The demo's metric set: the aggregator's own registry (streaming, every
counter and series of SPEC §6, their real HDR ranges) filled with a run of 20,000
samples. Timed, each as the median of many repeats, against one publisher tick
(``build_snapshot``): the first scrape of a new snapshot (HDR decode, bucket regrouping,
render), a render of a snapshot already decoded, and a scrape served from the
rendering cache (``ExpositionCache``: what every scraper but the first gets).

Flood half (issue 13). The real ``AggregatorService`` with the Prometheus mirror
attached as ``aggregate --listen`` attaches it (snapshot interval 0.5 s), fed by a
synthetic source process (300 requests/s). A "normal" scraper process keeps one
keep-alive connection and GETs ``/metrics`` 10 times a second (OpenMetrics, gzip) for
the whole run. Each run has a quiet window of 10 s, then a flood window of 10 s in
which a flood process keeps 500 client connections scraping as fast as the server
answers (a refused one reconnects after 50 ms). Figures per window: the worst gap
between snapshot ticks as the aggregator's loop sees them (target: flood <= 1.5 x the
interval) and the p99 of the normal scrape's latency. Both serving modes are measured,
runs alternating: the server on the aggregator's loop, and on its own thread.

Ingest half. A producer process sends the same pre-built streaming workload as
``bench/aggregator.py`` (as fast as the aggregator takes it); the real
``AggregatorService`` ingests it with the mirror attached (snapshot interval 0.25 s). A
scraper process GETs ``/metrics`` 10 times a second (OpenMetrics, gzip, as Prometheus
asks) in every other window of 0.5 s and is idle in the windows between; a sampler
thread reads how many events were applied. Each scraped window's ingest rate is
compared with the quiet window next to it: alternating at that pace cancels the drift
of a shared machine that whole-run comparisons suffered (single runs varied by 2x).
Both serving modes, runs alternating. Target: scraped / not scraped >= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import importlib.util
import itertools
import json
import logging
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
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

from exporter.cli.mirror_args import ExporterOptions  # noqa: E402
from exporter.cli.parent_watch import arm_from_environment, child_env  # noqa: E402
from exporter.http.web_config import WebConfig  # noqa: E402
from exporter.prometheus.collector import SnapshotCollector  # noqa: E402
from exporter.prometheus.exposition_cache import ExpositionCache  # noqa: E402
from exporter.prometheus.mirror import mirror_service  # noqa: E402
from registry import MetricsRegistry, SessionState  # noqa: E402
from registry.aggregator import AggregatorMetrics, AggregatorService, SessionMachine  # noqa: E402
from registry.events import EventPublisher  # noqa: E402
from registry.events.synthetic import SyntheticLoad, drive  # noqa: E402

TARGET = 0.95
SCRAPES_PER_S = 10.0
FLOOD_CLIENTS = 500
FLOOD_WINDOW_S = 10.0
FLOOD_INTERVAL_S = 0.5
GAP_TARGET = 1.5
OM_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    "Accept-Encoding": "gzip",
}


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
    cache = ExpositionCache(registry, generation=lambda: collector.generation)
    accept, encoding = OM_HEADERS["Accept"], OM_HEADERS["Accept-Encoding"]
    cache.get(accept, encoding)
    cached = median_time(lambda: cache.get(accept, encoding), repeats)
    print(
        f"render /metrics for the demo's metric set: {len(reg.counter_names)} counters, "
        f"{len(reg.series_names)} series -> {n_samples} samples, "
        f"{len(text):,} B text / {len(om):,} B OpenMetrics; medians of {repeats}"
    )
    print(f"  baseline: one publisher tick (build_snapshot)      {base * 1e3:8.3f} ms   1.000")
    for label, t in (
        ("first scrape of a new snapshot (OpenMetrics)", first),
        ("further scrape, OpenMetrics 1.0", again_om),
        ("further scrape, text 0.0.4", again_text),
        ("scrape served from the cache (OpenMetrics, gzip)", cached),
    ):
        print(f"  {label:<49} {t * 1e3:8.3f} ms   {t / base:5.3f}")


# -- ingest half ------------------------------------------------------------------------


def load_aggregator_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_aggregator", ROOT / "bench" / "aggregator.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scrape_loop(url: str, t0: float, window_s: float) -> int:
    """Child process: GET ``url`` 10 times a second during the odd windows of ``window_s``
    seconds counted from ``t0`` (monotonic), idle in the even ones, until SIGINT; prints
    the times of the scrapes answered, as JSON, on exit."""
    done: list[float] = []
    next_at = time.monotonic()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        while True:
            if int((time.monotonic() - t0) // window_s) % 2 == 1:
                try:
                    req = urllib.request.Request(url, headers=OM_HEADERS)
                    with urllib.request.urlopen(req, timeout=5) as r:
                        r.read()
                    done.append(time.monotonic())
                except OSError:  # not serving yet, or gone at the end of the run
                    pass
            next_at += 1.0 / SCRAPES_PER_S
            time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        sys.stdout.write(json.dumps(done) + "\n")
        return 0


INGEST_WINDOW_S = 0.5


def one_ingest_run(
    agg: ModuleType, n_events: int, own_thread: bool
) -> tuple[list[float], list[float], float, float]:
    """One aggregator run whose ingest is scraped in every other window of 0.5 s.

    Returns the ingest rates (events/s) of the quiet windows and of the scraped ones,
    in window order, the scrapes per second of the scraped windows, and (server thread
    only) the share of a core the server thread used over the run.
    """
    n_expected = agg.expected_counts(n_events)[0]  # every record of the workload is applied
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
    marks: dict[SessionState, float] = {}
    service.session.add_listener(lambda old, new: marks.setdefault(new, time.monotonic()))
    mirror = mirror_service(service, bench_options(), own_thread=own_thread)
    assert mirror is not None and mirror.url is not None
    t0 = time.monotonic() + 0.5
    scraper = subprocess.Popen(
        [sys.executable, __file__, "--scrape", mirror.url + "/metrics", "--t0", repr(t0)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    producer = agg.start_producer(endpoint, n_events)
    samples: list[tuple[float, int]] = []
    cpu_marks: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:  # reads one int attribute: no lock, no work for the loop
        while not done.is_set():
            now = time.monotonic()
            samples.append((now, service.events_applied))
            thread = mirror.server_thread
            running = SessionState.LIVE in marks and SessionState.DRAINING not in marks
            if thread is not None and running:
                cpu_marks.append((now, thread.cpu_time()))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        assert scraper.stdout is not None and scraper.stdout.readline().strip() == "ready"
        gc.collect()
        sampler.start()
        rc = asyncio.run(service.run())
        done.set()
        sampler.join()
        assert rc == 0 and service.events_applied == n_expected, (rc, service.events_applied)
        scraper.send_signal(signal.SIGINT)
        out, _ = scraper.communicate(timeout=10)
        live, end = marks[SessionState.LIVE], marks[SessionState.DRAINING]
        quiet: list[float] = []
        scraped: list[float] = []
        k = math.ceil((live - t0) / INGEST_WINDOW_S)
        while t0 + (k + 1) * INGEST_WINDOW_S <= end:
            a, b = t0 + k * INGEST_WINDOW_S, t0 + (k + 1) * INGEST_WINDOW_S
            rate = (applied_at(samples, b) - applied_at(samples, a)) / INGEST_WINDOW_S
            (scraped if k % 2 == 1 else quiet).append(rate)
            k += 1
        answered = [t for t in json.loads(out.strip().splitlines()[-1]) if live <= t <= end]
        per_s = len(answered) / max(1e-9, (end - live) / 2)
        cpu = math.nan
        if len(cpu_marks) >= 2:
            (ta, ca), (tb, cb) = cpu_marks[0], cpu_marks[-1]
            cpu = (cb - ca) / (tb - ta)
        return quiet, scraped, per_s, cpu
    finally:
        done.set()
        if scraper.poll() is None:
            scraper.kill()
        mirror.close()
        producer.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def applied_at(samples: list[tuple[float, int]], t: float) -> float:
    """Events applied at time ``t``, interpolated between the sampler's readings."""
    for (ta, na), (tb, nb) in itertools.pairwise(samples):
        if ta <= t <= tb:
            return na + (nb - na) * ((t - ta) / (tb - ta) if tb > ta else 0.0)
    return float(samples[-1][1] if t > samples[-1][0] else samples[0][1])


def ingest_half(n_events: int, repeats: int) -> None:
    agg = load_aggregator_bench()
    print(
        f"aggregator ingest with the exporter attached: {n_events:,} events/run, {repeats} runs "
        f"per serving mode (alternating), each run scraped {SCRAPES_PER_S:g}x/s in every other "
        f"window of {INGEST_WINDOW_S:g} s; baseline: the quiet windows between"
    )
    one_ingest_run(agg, 100_000, False)  # warm-up
    modes = {"aggregator's loop": False, "own thread": True}
    pairs: dict[str, list[float]] = {m: [] for m in modes}
    quiet_all: dict[str, list[float]] = {m: [] for m in modes}
    scraped_all: dict[str, list[float]] = {m: [] for m in modes}
    cpus: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(repeats):
        order = list(modes) if i % 2 == 0 else list(reversed(modes))
        for mode in order:
            quiet, scraped, per_s, cpu = one_ingest_run(agg, n_events, modes[mode])
            cpus[mode].append(cpu)
            # each scraped window against the quiet window next to it
            run_pairs = [s / q for q, s in zip(quiet, scraped, strict=False) if q > 0]
            pairs[mode] += run_pairs
            quiet_all[mode] += quiet
            scraped_all[mode] += scraped
            print(
                f"  run {i + 1}, {mode:<17}: quiet {statistics.median(quiet):>9,.0f} ev/s, "
                f"scraped {statistics.median(scraped):>9,.0f} ev/s ({per_s:.1f} scrapes/s); "
                f"median pair ratio {statistics.median(run_pairs):.3f}"
                + (f"; server thread used {cpu:.1%} of a core" if math.isfinite(cpu) else "")
            )
    share = statistics.median(cpus["own thread"])
    print(
        f"  the server thread's own CPU over a run: {share:.1%} of a core (median; scraped half "
        f"the time, so ~{2 * share:.1%} while scraped): the cost the windows cannot resolve"
    )
    for mode in modes:
        q, s = statistics.median(quiet_all[mode]), statistics.median(scraped_all[mode])
        paired = statistics.median(pairs[mode])
        verdict = "meets" if paired >= TARGET else "MISSES"
        print(
            f"  {mode:<17}: not scraped {q:>9,.0f} ev/s, scraped {s:>9,.0f} ev/s "
            f"(medians of windows; ratio {s / q:.3f}); median of {len(pairs[mode])} per-pair "
            f"ratios {paired:.3f} ({verdict} the target >= {TARGET})"
        )


# -- flood half -----------------------------------------------------------------------------


def produce_synthetic(endpoint: str, duration_s: float) -> int:
    """Child process: bind the events endpoint and play a synthetic run in real time."""
    load = SyntheticLoad(qps=300, duration_s=duration_s, seed=1)
    pub = EventPublisher(endpoint)
    sys.stdout.write("ready\n")
    sys.stdout.flush()

    async def main() -> None:
        assert await pub.wait_for_subscriber(30)
        await drive(load, pub.send_many)

    asyncio.run(main())
    pub.close()
    return 0


def normal_scrape(url: str) -> int:
    """Child process: one keep-alive connection, GET ``url`` 10x/s until SIGINT; print JSON
    ``[[start (monotonic), latency, status], ...]``."""
    parts = urllib.parse.urlsplit(url)
    conn: http.client.HTTPConnection | None = None
    seen: list[tuple[float, float, int]] = []
    next_at = time.monotonic()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        while True:
            t0 = time.monotonic()
            status = 0
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                conn.request("GET", parts.path, headers=OM_HEADERS)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                sys.stderr.write(f"normal scrape failed: {exc!r}\n")
            seen.append((t0, time.monotonic() - t0, status))
            next_at += 1.0 / SCRAPES_PER_S
            time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        sys.stdout.write(json.dumps(seen) + "\n")
        return 0


def flood(url: str, clients: int, duration_s: float) -> int:
    """Child process: ``clients`` connections scraping as fast as answered for ``duration_s``;
    prints ``go`` with its start time, then a JSON summary."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {host}\r\nAccept: {OM_HEADERS['Accept']}\r\n"
        f"Accept-Encoding: gzip\r\n\r\n"
    ).encode()
    counts = {"ok": 0, "refused": 0, "errors": 0, "unfinished": 0}

    async def session(end: float) -> bool:
        """One connection, scraping until ``end``; whether it was refused."""
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < end:
                writer.write(head)
                raw = await reader.readuntil(b"\r\n\r\n")
                status = int(raw.split(b" ", 2)[1])
                lower = raw.lower()
                length = int(lower.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
                if status != 200:
                    counts["refused"] += 1
                    return True
                counts["ok"] += 1
                if b"connection: close" in lower:
                    break
            return False
        finally:
            writer.close()

    async def client(end: float) -> None:
        while time.monotonic() < end:
            try:
                # A connect still queued (SYN retries) or an answer still pending at the end of
                # the window is counted, not waited for: the window must end on time.
                refused = await asyncio.wait_for(session(end), end + 1.0 - time.monotonic())
            except TimeoutError:
                counts["unfinished"] += 1
                return
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                counts["errors"] += 1
                refused = True
            if refused:
                await asyncio.sleep(0.05)

    async def main() -> tuple[float, float]:
        start = time.monotonic()
        sys.stdout.write(f"go {start}\n")
        sys.stdout.flush()
        await asyncio.gather(*(client(start + duration_s) for _ in range(clients)))
        return start, time.monotonic()

    start, end = asyncio.run(main())
    sys.stdout.write(json.dumps({**counts, "start": start, "end": end}) + "\n")
    return 0


def worst_gap(ticks: list[float], start: float, end: float) -> float:
    """The longest time between consecutive ticks that overlaps ``[start, end]``."""
    gaps = [b - a for a, b in itertools.pairwise(ticks) if b > start and a < end]
    return max(gaps) if gaps else math.nan


def p99(values: list[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def child(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{args[0]} child did not start")
    return proc


def one_flood_run(own_thread: bool, clients: int) -> dict[str, float]:
    """Quiet window, then flood window, in one aggregator run; the figures of both."""
    workdir = Path(tempfile.mkdtemp(prefix="bm-bench-flood-"))
    endpoint = f"ipc://{workdir}/events.sock"
    service = AggregatorService(
        events_endpoint=endpoint,
        snapshots_endpoint=f"ipc://{workdir}/snapshots.sock",
        output_dir=workdir / "out",
        streaming=True,
        interval_s=FLOOD_INTERVAL_S,
        run_id="bench-flood",
        handle_signals=False,
    )
    ticks: list[float] = []
    service.add_listener(lambda snap: ticks.append(time.monotonic()))
    mirror = mirror_service(service, bench_options(), own_thread=own_thread)
    assert mirror is not None and mirror.url is not None
    url = mirror.url + "/metrics"
    run_s = 2.0 + 2 * FLOOD_WINDOW_S + 8.0  # room for child start-ups under load
    producer = child("--produce-synthetic", endpoint, "--duration", str(run_s))
    figures: dict[str, float] = {}

    def orchestrate() -> None:
        while not ticks:
            time.sleep(0.01)
        scraper = child("--normal-scrape", url)
        quiet = (time.monotonic() + 1.0, time.monotonic() + 1.0 + FLOOD_WINDOW_S)
        time.sleep(max(0.0, quiet[1] - time.monotonic()))
        crowd = subprocess.Popen(
            [sys.executable, __file__, "--flood", url, "--clients", str(clients)],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        out, _ = crowd.communicate(timeout=FLOOD_WINDOW_S + 60)
        summary = json.loads(out.strip().splitlines()[-1])
        scraper.send_signal(signal.SIGINT)
        seen = json.loads(scraper.communicate(timeout=30)[0].strip().splitlines()[-1])
        loud = (summary["start"], summary["end"])
        for name, (a, b) in (("quiet", quiet), ("flood", loud)):
            window = [(lat, st) for t0, lat, st in seen if a <= t0 < b]
            figures[f"{name}_gap"] = worst_gap(ticks, a, b)
            figures[f"{name}_p99"] = p99([lat for lat, st in window if st == 200])
            figures[f"{name}_failed"] = sum(1 for _, st in window if st != 200)
        span = loud[1] - loud[0]
        figures["flood_ok_per_s"] = summary["ok"] / span
        figures["flood_refused_per_s"] = summary["refused"] / span
        figures["flood_errors"] = summary["errors"]
        figures["flood_unfinished"] = summary["unfinished"]

    side = threading.Thread(target=orchestrate, daemon=True)
    try:
        side.start()
        rc = asyncio.run(service.run())
        side.join(60)
        assert rc == 0, rc
        assert "flood_gap" in figures, "the flood did not run"
        return figures
    finally:
        mirror.close()
        producer.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def flood_half(repeats: int, clients: int) -> None:
    print(
        f"{clients} concurrent scrapers for {FLOOD_WINDOW_S:g} s during a run "
        f"(snapshot interval {FLOOD_INTERVAL_S:g} s), against a quiet window of the same run; "
        f"{repeats} runs per serving mode, alternating; medians"
    )
    modes = {"aggregator's loop": False, "own thread": True}
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for i in range(repeats):
        order = list(modes) if i % 2 == 0 else list(reversed(modes))
        for mode in order:
            f = one_flood_run(modes[mode], clients)
            runs[mode].append(f)
            print(
                f"  run {i + 1}, {mode:<17}: worst gap quiet {f['quiet_gap']:.3f} s, "
                f"flood {f['flood_gap']:.3f} s; normal scrape p99 quiet "
                f"{f['quiet_p99'] * 1e3:.1f} ms, flood {f['flood_p99'] * 1e3:.1f} ms "
                f"({f['flood_failed']:.0f} failed); flood {f['flood_ok_per_s']:,.0f} ok/s, "
                f"{f['flood_refused_per_s']:,.0f} refused/s, {f['flood_errors']:.0f} errors, "
                f"{f['flood_unfinished']:.0f} unanswered at the end"
            )

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    print(
        f"  {'serving from':<17}  worst tick gap: quiet   flood  flood/interval   "
        f"normal scrape p99: quiet    flood  flood/quiet"
    )
    for mode in modes:
        qg, fg = med(mode, "quiet_gap"), med(mode, "flood_gap")
        qp, fp = med(mode, "quiet_p99"), med(mode, "flood_p99")
        verdict = "meets" if fg <= GAP_TARGET * FLOOD_INTERVAL_S else "MISSES"
        print(
            f"  {mode:<17}  {qg:>20.3f} s {fg:>5.3f} s {fg / FLOOD_INTERVAL_S:>8.2f} ({verdict})"
            f"  {qp * 1e3:>18.1f} ms {fp * 1e3:>6.1f} ms {fp / qp:>8.1f}x"
        )
    print(f"  target: worst tick gap under the flood <= {GAP_TARGET} x the interval")


def bench_options() -> ExporterOptions:
    return ExporterOptions(
        listen=("127.0.0.1", 0),
        web_config=WebConfig(),
        linger=0.0,
        pushgateway=None,
        push_job="bench",
        namespace="bench",
        stale_after=10.0,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="events per ingest run")
    parser.add_argument("--repeats", type=int, default=5, help="ingest runs")
    parser.add_argument("--flood-repeats", type=int, default=3, help="flood runs per mode")
    parser.add_argument("--clients", type=int, default=FLOOD_CLIENTS, help="flood clients")
    parser.add_argument("--render-repeats", type=int, default=200)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-flood", action="store_true")
    parser.add_argument("--scrape", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--normal-scrape", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--flood", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--produce-synthetic", metavar="ENDPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=24.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # The server's rate-limited warnings (e.g. connections refused at the cap during the
    # flood) are expected here; keep them out of the figures.
    logging.getLogger("exporter.http.server.requests").setLevel(logging.ERROR)
    if args.scrape or args.normal_scrape or args.flood or args.produce_synthetic:
        arm_from_environment()  # a child of this bench: end when the bench dies
    if args.scrape:
        return scrape_loop(args.scrape, args.t0, INGEST_WINDOW_S)
    if args.normal_scrape:
        return normal_scrape(args.normal_scrape)
    if args.flood:
        return flood(args.flood, args.clients, FLOOD_WINDOW_S)
    if args.produce_synthetic:
        return produce_synthetic(args.produce_synthetic, args.duration)
    # Other processes on the machine move every figure: say how busy it was.
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    render_half(args.render_repeats)
    if not args.skip_flood:
        flood_half(args.flood_repeats, args.clients)
    if not args.skip_ingest:
        ingest_half(args.events, args.repeats)
    print("load average at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
