"""The in-process API (issue 14): MetricsSession / SyncMetricsSession over real sockets and files.

The README's examples are extracted by their markers and run verbatim in a
fresh interpreter; the rest checks the guarantees the module docstring and the
README state: the catalogue equals the aggregator's, the sample helpers count
as the aggregator counts, counts from threads are exact, an exception inside
the block still writes (INTERRUPTED) final files, and a blocking scrape from
the session's own event loop is answered.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.http.server import MetricsServer
from exporter.prometheus.collector import SnapshotCollector
from registry import (
    STANDARD_COUNTERS,
    MetricsRegistry,
    MetricsSession,
    SessionState,
    SnapshotSubscriber,
    SyncMetricsSession,
    UnknownMetricError,
    register_standard_metrics,
    standard_series,
)
from registry.aggregator import AggregatorMetrics, AggregatorService
from registry.aggregator.metrics import TAIL_LATENCY_SERIES
from registry.delivery.run_lock import LOCK_NAME, DirectoryLocked
from registry.events import EventRecord, EventType
from registry.events.data import ErrorData
from tests.support.helpers import async_wait_until
from tests.support.read_only import made_read_only

README = Path(__file__).resolve().parents[2] / "README.md"
DURATIONS = ("tracked_duration_ns", "legacy_loadgen_window_duration_ns", "total_duration_ns")


def readme_block(tag: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {tag}:start -->\n```python\n(.*?)```\n<!-- {tag}:end -->", text, re.S)
    assert found, f"README.md has no python block between the {tag} markers"
    return found.group(1)


def run_verbatim(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def read_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


# -- the README ---------------------------------------------------------------------


def test_readme_in_process_example_runs_verbatim_and_scrapes_its_own_metrics(
    tmp_path: Path,
) -> None:
    code = readme_block("in-process-example")
    # the example itself GETs its /metrics and asserts the value; keep it doing so
    assert "urllib.request.urlopen(m.metrics_url" in code and "assert tracked" in code
    result = run_verbatim(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["complete", "200", "True"]
    final = read_json(tmp_path / "bench-out" / "final_snapshot.json")
    assert final["state"] == "complete"
    assert final["run"]["recorder"] == "in-process" and final["run"]["labels"] == {"model": "demo"}
    report = read_json(tmp_path / "bench-out" / "result_summary.json")
    assert report["complete"] is True and report["source"] == "file"
    assert report["samples"]["tracked"] == {
        "issued": 200,
        "completed": 200,
        "failed": 0,
        "in_flight": 0,
    }
    for name in ("sample_latency_ns", "ttft_ns", "tpot_ns", "osl", "isl"):
        assert report["series"][name]["count"] == 200, name
    assert report["series"]["chunk_delta_ns"]["count"] == 1
    assert report["qps"] > 0 and report["tps"] == pytest.approx(64 * report["qps"])
    assert not (tmp_path / "bench-out" / LOCK_NAME).exists()


def test_readme_sync_example_runs_verbatim(tmp_path: Path) -> None:
    result = run_verbatim(readme_block("in-process-sync-example"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["complete", "4000", "4000"]
    final = read_json(tmp_path / "bench-out-sync" / "final_snapshot.json")
    assert "ttft_ns" not in {m["name"] for m in final["metrics"]}  # streaming=False


# -- the catalogue and the sample helpers ---------------------------------------------


@pytest.mark.parametrize("streaming", [True, False])
def test_the_catalogue_is_the_aggregators(tmp_path: Path, streaming: bool) -> None:
    service = AggregatorService(
        events_endpoint="ipc:///nonexistent",
        snapshots_endpoint="tcp://127.0.0.1:0",
        output_dir=tmp_path,
        streaming=streaming,
    )
    theirs = service.registry
    ours = MetricsRegistry()
    register_standard_metrics(ours, streaming=streaming)
    assert ours.counter_names == theirs.counter_names == STANDARD_COUNTERS
    for name in ours.counter_names:
        info, expected = ours.counter_info(name), theirs.counter_info(name)
        assert (info.dtype, info.settable) == (expected.dtype, expected.settable), name
    assert ours.series_names == theirs.series_names == standard_series(streaming=streaming)
    for name in ours.series_names:
        a, b = ours.series_config(name), theirs.series_config(name)
        assert {k: getattr(a, k) for k in a.__slots__} == {k: getattr(b, k) for k in b.__slots__}
        assert a.tail_latency is (name in TAIL_LATENCY_SERIES)
    if streaming:
        assert ours.series_config("tpot_ns").dtype is float


def test_sample_helpers_count_as_the_aggregator_counts(tmp_path: Path) -> None:
    rng = random.Random(3)
    reasons = ["stop", "length", "tool_calls", "content_filter", "function_call", "weird", None]
    events = [
        EventRecord(EventType.SESSION_STARTED, 1_000),
        EventRecord(EventType.SESSION_START_PERFORMANCE_TRACKING, 1_000),
    ]
    session = MetricsSession(tmp_path)  # the helpers need no running session
    for i in range(500):
        uuid, issued = f"s{i}", 2_000 + i * 10_000_000
        isl, osl = rng.randint(1, 4000), rng.choice([0, 1, 2, rng.randint(3, 900)])
        ttft = rng.randint(1, 5_000_000)
        latency = ttft + rng.randint(0, 50_000_000)
        reason, failed = rng.choice(reasons), rng.random() < 0.1
        events.append(EventRecord(EventType.SAMPLE_ISSUED, issued, uuid, input_tokens=isl))
        events.append(EventRecord(EventType.SAMPLE_RECV_FIRST, issued + ttft, uuid))
        if failed:
            data = ErrorData("ClientError", "x")
            events.append(EventRecord(EventType.ERROR_CLIENT, issued + latency, uuid, data=data))
        events.append(
            EventRecord(
                EventType.SAMPLE_COMPLETE,
                issued + latency,
                uuid,
                output_tokens=osl,
                **({"finish_reason": reason} if reason is not None else {}),
            )
        )
        session.sample_issued(isl=isl)
        session.sample_completed(
            latency, ttft_ns=ttft, osl=osl, finish_reason=reason, failed=failed
        )
    aggregated = MetricsRegistry()
    AggregatorMetrics(aggregated, streaming=True).handle_many(events)
    theirs = aggregated.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    ours = session.registry.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    for name in STANDARD_COUNTERS:
        if name not in DURATIONS:
            assert ours.counters[name] == theirs.counters[name], name
    assert ours.counters["tracked_samples_failed"] > 0
    assert ours.counters["tracked_finish_reason_other"] > 0
    for name in standard_series(streaming=True):
        if name == "chunk_delta_ns":
            continue  # recorded by the caller, not by a helper
        a, b = ours.series[name], theirs.series[name]
        assert a.count > 0, name
        assert (a.count, a.total, a.min, a.max, a.sum_sq) == (
            b.count,
            b.total,
            b.min,
            b.max,
            b.sum_sq,
        ), name
        assert a.percentiles == b.percentiles, name
        assert a.early_stopping_percentiles == b.early_stopping_percentiles, name


def test_a_bad_sample_changes_nothing(tmp_path: Path) -> None:
    session = MetricsSession(tmp_path, streaming=False)
    before = session.registry.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    for call, error in (
        (lambda: session.sample_completed(1.5), TypeError),  # type: ignore[arg-type]
        (lambda: session.sample_completed(10, osl=-1), ValueError),
        (lambda: session.sample_completed(10, ttft_ns=5), ValueError),  # not streaming
        (lambda: session.sample_completed(10, finish_reason=3), TypeError),  # type: ignore[arg-type]
        (lambda: session.sample_issued(isl="12"), TypeError),  # type: ignore[arg-type]
    ):
        with pytest.raises(error):
            call()
    streaming = MetricsSession(tmp_path / "s")
    with pytest.raises(ValueError, match=r"ttft_ns \(9\) is after the completion"):
        streaming.sample_completed(5, ttft_ns=9)
    after = session.registry.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    assert after.counters == before.counters
    assert all(s.count == 0 for s in after.series.values())
    bare = MetricsSession(tmp_path / "bare", standard_metrics=False)
    assert bare.registry.counter_names == () and bare.registry.series_names == ()
    with pytest.raises(RuntimeError, match="standard metrics"):
        bare.sample_issued()


# -- async variant ----------------------------------------------------------------------


def test_async_session_streams_snapshots_and_writes_complete_files(tmp_path: Path) -> None:
    async def main() -> tuple[MetricsSession, Any, Any]:
        m = MetricsSession(tmp_path, interval_s=0.05, run_id="r-async", labels={"model": "x"})
        m.register_series("queue_wait_ns", hdr_low=1, hdr_high=10**12)
        async with m:
            assert m.state is SessionState.LIVE
            async with SnapshotSubscriber(m.snapshots_endpoint or "", conflate=False) as sub:
                m.sample_issued(isl=7)
                m.record("queue_wait_ns", 1_500)
                assert await async_wait_until(
                    lambda: (
                        sub.latest is not None and sub.latest.counters["total_samples_issued"] == 1
                    ),
                    timeout=10,
                )
                live = sub.latest
                m.sample_completed(2_000_000, ttft_ns=500_000, osl=3, finish_reason="stop")
                report = await m.finish()
                terminal = await sub.wait_for_terminal(10)
            assert report is m.report
        return m, live, terminal

    m, live, terminal = asyncio.run(main())
    assert live is not None and live.state is SessionState.LIVE
    assert terminal is not None and terminal.state is SessionState.COMPLETE
    assert terminal.counters["tracked_samples_completed"] == 1
    assert terminal.series["queue_wait_ns"].count == 1
    assert m.state is SessionState.COMPLETE and m.final_snapshot == terminal
    final = read_json(tmp_path / "final_snapshot.json")
    assert final["run"]["run_id"] == "r-async" and final["state"] == "complete"
    report = read_json(tmp_path / "result_summary.json")
    assert report == json.loads(json.dumps(m.report))
    assert report["run"]["run_id"] == "r-async" and report["complete"] is True
    assert report["series"]["tpot_ns"]["count"] == 1  # (2.0 - 0.5) ms / (3 - 1)
    assert report["series"]["tpot_ns"]["max"] == 750_000.0
    assert m.unwritten_files == {}


def test_an_exception_inside_async_with_writes_interrupted_files(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    async def main() -> MetricsSession:
        m = MetricsSession(tmp_path)
        with pytest.raises(Boom):
            async with m:
                m.sample_issued(isl=10)
                m.sample_completed(1_000, osl=5)
                m.sample_issued(isl=11)
                raise Boom
        return m

    m = asyncio.run(main())
    assert m.state is SessionState.INTERRUPTED
    final = read_json(tmp_path / "final_snapshot.json")
    assert final["state"] == "interrupted"
    counters = {x["name"]: x["value"] for x in final["metrics"] if x["type"] == "counter"}
    assert counters["tracked_samples_issued"] == 2 and counters["tracked_samples_completed"] == 1
    report = read_json(tmp_path / "result_summary.json")
    assert report["complete"] is False and "interrupted" in report["incomplete_reason"]
    assert report["samples"]["tracked"]["in_flight"] == 1
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_cancelled_benchmark_still_writes_interrupted_files(tmp_path: Path) -> None:
    async def main() -> MetricsSession:
        m = MetricsSession(tmp_path)
        recorded = asyncio.Event()

        async def benchmark() -> None:
            async with m:
                m.record("ttft_ns", 1_000)
                recorded.set()
                await asyncio.Event().wait()  # runs until cancelled

        task = asyncio.create_task(benchmark())
        await recorded.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return m

    m = asyncio.run(main())
    assert m.state is SessionState.INTERRUPTED
    final = read_json(tmp_path / "final_snapshot.json")
    assert final["state"] == "interrupted"
    assert next(x for x in final["metrics"] if x["name"] == "ttft_ns")["count"] == 1


def scrape(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
    return body.decode()


def test_a_blocking_scrape_from_the_sessions_own_loop_is_answered(tmp_path: Path) -> None:
    async def main() -> tuple[str, str, float]:
        async with MetricsSession(tmp_path, listen="127.0.0.1:0", interval_s=0.05) as m:
            m.record("ttft_ns", 42_000_000)
            await m.next_snapshot()
            url = m.metrics_url or ""
            t0 = time.monotonic()
            body = scrape(url, timeout=10)  # blocks this loop: the server must not need it
            return url, body, time.monotonic() - t0

    url, body, took = asyncio.run(main())
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", url) and not url.endswith(":0/metrics")
    assert took < 10
    count = [ln for ln in body.splitlines() if ln.startswith("bench_ttft_quantiles_seconds_count")]
    assert len(count) == 1 and count[0].endswith(" 1.0"), count
    with pytest.raises(urllib.error.URLError):
        scrape(url, timeout=2)  # and the server is gone once the session finished


def test_the_same_probe_hangs_a_server_on_the_callers_loop() -> None:
    """The control: why the session serves from a thread (the issue's probe, on the old way)."""

    async def main() -> None:
        collectors = CollectorRegistry()
        collectors.register(SnapshotCollector(labels={"run_id": "r"}))
        server = MetricsServer(collectors)
        await server.start()
        try:
            with pytest.raises((TimeoutError, urllib.error.URLError)):
                scrape(server.url + "/metrics", timeout=0.5)
        finally:
            await server.stop()

    asyncio.run(main())


# -- sync variant -----------------------------------------------------------------------


def test_sync_session_counts_exactly_from_many_threads(tmp_path: Path) -> None:
    n_threads, per_thread = 4, 5_000
    m = SyncMetricsSession(tmp_path, listen="127.0.0.1:0", interval_s=0.02)
    m.register_counter("retries")
    with m:
        go = threading.Barrier(n_threads)

        def worker() -> None:
            go.wait()
            for i in range(per_thread):
                m.sample_issued(isl=100)
                m.sample_completed(1_000_000 + i, ttft_ns=1_000, osl=10, finish_reason="stop")
                m.increment("retries")
                m.record("chunk_delta_ns", 5)

        threads = [threading.Thread(target=worker) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        snap = m.next_snapshot()
        assert snap.counters["retries"] == n_threads * per_thread  # live, after the joins
        body = scrape(m.metrics_url or "", timeout=10)
        assert f'bench_retries_total{{run_id="{m.run_id}"}} 20000.0' in body
    total = n_threads * per_thread
    final = m.final_snapshot
    assert final is not None and final.state is SessionState.COMPLETE
    for name in ("total_samples_issued", "tracked_samples_completed", "retries"):
        assert final.counters[name] == total, name
    assert final.counters["tracked_output_tokens"] == 10 * total
    assert final.counters["tracked_finish_reason_stop"] == total
    for name in ("isl", "sample_latency_ns", "ttft_ns", "osl", "tpot_ns", "chunk_delta_ns"):
        assert final.series[name].count == total, name
    assert m.report is not None and m.report["samples"]["all"]["completed"] == total
    assert m.finish() is m.report  # idempotent


def test_an_exception_inside_sync_with_writes_interrupted_files(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), SyncMetricsSession(tmp_path) as m:
        m.sample_issued(isl=3)
        raise KeyboardInterrupt
    assert m.state is SessionState.INTERRUPTED
    assert read_json(tmp_path / "final_snapshot.json")["state"] == "interrupted"
    report = read_json(tmp_path / "result_summary.json")
    assert report["state"] == "interrupted" and report["samples"]["all"]["issued"] == 1


def test_durations_follow_the_session_unless_set(tmp_path: Path) -> None:
    with SyncMetricsSession(tmp_path / "auto", interval_s=0.02) as m:
        m.sample_issued()
        m.sample_completed(1_000)
        live = m.next_snapshot()  # a tick after the completion: total runs on, tracked stops
    auto = m.final_snapshot
    assert auto is not None
    tracked, total = auto.counters["tracked_duration_ns"], auto.counters["total_duration_ns"]
    assert 0 < tracked < live.counters["total_duration_ns"] <= total
    assert live.counters["tracked_duration_ns"] == tracked
    assert auto.counters["legacy_loadgen_window_duration_ns"] == 0
    with SyncMetricsSession(tmp_path / "manual") as m:
        for _ in range(10):
            m.sample_issued()
            m.sample_completed(1_000)
        m.set_counter("tracked_duration_ns", 5_000_000_000)
    assert m.report is not None
    assert m.report["duration_s"] == 5.0 and m.report["qps"] == 2.0
    assert m.report["qps_legacy"] is None


# -- misuse -----------------------------------------------------------------------------


def test_misuse_gets_clear_errors(tmp_path: Path) -> None:
    with SyncMetricsSession(tmp_path / "a") as m:
        with pytest.raises(RuntimeError, match="register metrics before the session starts"):
            m.register_series("late_ns", hdr_low=1, hdr_high=100)
        with pytest.raises(UnknownMetricError, match="did you mean 'ttft_ns'"):
            m.record("ttft", 1)
    for late in (
        lambda: m.record("ttft_ns", 1),
        lambda: m.increment("total_samples_issued"),
        lambda: m.sample_issued(),
    ):
        with pytest.raises(RuntimeError, match="the session has finished"):
            late()
    with (
        pytest.raises(TypeError, match="use 'async with', or SyncMetricsSession"),
        MetricsSession(tmp_path / "b"),
    ):
        pass

    async def wrong_way() -> None:
        async with SyncMetricsSession(tmp_path / "c"):
            pass

    with pytest.raises(TypeError, match="use 'with', or MetricsSession"):
        asyncio.run(wrong_way())
    with pytest.raises(RuntimeError, match=r"finish\(\) before start\(\)"):
        SyncMetricsSession(tmp_path / "d").finish()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval_s": float("nan")}, "interval_s must be a finite number > 0"),
        ({"interval_s": 0}, "interval_s"),
        ({"linger_s": -1}, "linger_s"),
        ({"run_id": ""}, "run_id"),
        ({"labels": {"model": 3}}, "labels must map str to str"),
        ({"listen": "127.0.0.1:99999"}, "port must be in 0..65535"),
        ({"snapshots": "tcp://127.0.0.1:99999"}, r"snapshots endpoint .* out of range \(0-65535"),
        ({"snapshots": "bogus"}, "must start with ipc:// or tcp://"),
        ({"listen": "127.0.0.1:0", "labels": {"bad-name": "x"}}, "label"),
        ({"listen": "127.0.0.1:0", "namespace": "1bad"}, "namespace"),
    ],
)
def test_bad_arguments_raise_value_error_before_anything_is_bound(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MetricsSession(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_one_run_per_output_directory(tmp_path: Path) -> None:
    with SyncMetricsSession(tmp_path, run_id="first"):
        second = SyncMetricsSession(tmp_path, run_id="second")
        with pytest.raises(DirectoryLocked, match=r"run first"):
            second.start()
    with SyncMetricsSession(tmp_path, run_id="third") as third:  # released by the first
        pass
    assert third.state is SessionState.COMPLETE


def test_a_disk_that_refuses_the_files_is_recorded_not_raised(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with SyncMetricsSession(out, lock_output_dir=False) as m:
        m.sample_issued()
        with made_read_only(out):
            report = m.finish()
    assert set(m.unwritten_files) == {"final_snapshot.json", "result_summary.json"}
    assert not (out / "final_snapshot.json").exists()
    assert report["source"] == "terminal_frame" and report["samples"]["all"]["issued"] == 1
    assert m.state is SessionState.COMPLETE


def test_import_registry_leaves_the_exporter_out() -> None:
    code = (
        "import sys, registry\n"
        "loaded = [m for m in ('exporter', 'aiohttp', 'prometheus_client') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_catalogue_is_data_the_aggregator_registers_from() -> None:
    # issue 26: the catalogue no longer builds a throwaway AggregatorMetrics to learn
    # itself, so importing it (or the whole registry package) loads no aggregator
    code = (
        "import sys, registry, registry.core.catalogue as c\n"
        "assert 'registry.aggregator' not in sys.modules, 'aggregator imported'\n"
        "s = c.standard_series_settings(streaming=True, sig_figs=2, n_histogram_buckets=9)\n"
        "print(list(s) == list(c.standard_series(streaming=True)),\n"
        "      {k: (v['hdr_high'], v['dtype'].__name__, v['sig_figs']) for k, v in s.items()})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    ns, tok = 3_600_000_000_000, 10_000_000
    assert result.stdout.strip() == str(True) + " " + str(
        {
            "sample_latency_ns": (ns, "int", 2),
            "isl": (tok, "int", 2),
            "osl": (tok, "int", 2),
            "ttft_ns": (ns, "int", 2),
            "chunk_delta_ns": (ns, "int", 2),
            "tpot_ns": (ns, "float", 2),
        }
    )
