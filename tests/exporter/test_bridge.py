"""The bridge and ``bench-metrics export``: a real publisher (in-process or a child
process) → ZeroMQ → Bridge → collector → HTTP, including restarts, malformed frames,
frames without HDR, the final linger and the command line."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest
import zmq

import exporter.cli.main as cli
from exporter.prometheus.bridge import Bridge
from exporter.prometheus.collector import SnapshotCollector
from registry import MetricsSnapshot, SessionState, SnapshotCodec, snapshot_from_dict
from registry.delivery.publisher import MetricsPublisher
from registry.delivery.snapshot_codec import SNAPSHOT_TOPIC
from tests.support.exporter_support import (
    find,
    free_tcp_port,
    openmetrics_exposition,
    parse_strict,
    samples,
    scrape,
    spec_registry,
    spec_snapshot,
    start_export,
    start_publisher,
)
from tests.support.helpers import async_wait_until, wait_until


def same_values(a: MetricsSnapshot | None, b: MetricsSnapshot) -> bool:
    """Equal as exported (the wire may carry a huge exact ``sum_sq`` as its float)."""
    assert a is not None
    return (a.counter, a.state, a.counters) == (b.counter, b.state, b.counters) and all(
        (x.count, x.total, x.percentiles, x.hdr) == (y.count, y.total, y.percentiles, y.hdr)
        for x, y in zip(a.series.values(), b.series.values(), strict=True)
    )


def _issued(c: SnapshotCollector) -> float:
    s = samples(openmetrics_exposition(c))
    return find(s, "bench_samples_issued_total", window="all")[0].value


def test_bridge_follows_a_publisher_and_freezes_on_the_final(
    ipc_endpoint: str, tmp_path: Path
) -> None:
    async def main() -> None:
        reg = spec_registry()
        publisher = MetricsPublisher(
            reg, endpoint=ipc_endpoint, final_snapshot_path=tmp_path / "f.json", interval_s=0.02
        )
        collector = SnapshotCollector(labels={"run_id": "b1"})
        async with Bridge(ipc_endpoint, collector) as bridge:
            publisher.start(lambda: (SessionState.LIVE, 0))
            reg.increment("total_samples_issued", 3)
            assert await async_wait_until(lambda: bridge.accepted >= 2, 10)
            assert _issued(collector) == 3
            reg.increment("total_samples_issued", 4)
            reg.record("ttft_ns", 5_000_000)
            assert await async_wait_until(lambda: _issued(collector) == 7, 10)
            final = await publisher.publish_final(n_pending_tasks=2)
            got = await bridge.wait_for_terminal(10)
            assert got is not None and got.counter == final.counter
            assert collector.snapshot == final
            # anything after the final (here: a restarted live stream) is not served
            reg2 = spec_registry()
            reg2.increment("total_samples_issued", 1000)
            await publisher.aclose()
            p2 = MetricsPublisher(
                reg2, endpoint=ipc_endpoint, final_snapshot_path=tmp_path / "g.json",
                interval_s=0.02,
            )  # fmt: skip
            p2.start(lambda: (SessionState.LIVE, 0))
            assert await async_wait_until(lambda: bridge.ignored_after_final > 0, 10)
            await p2.aclose()
            assert collector.snapshot == final
            fams = parse_strict(openmetrics_exposition(collector))
            assert fams["bench_pending_tasks"].samples[0].value == 2
            state = {
                s.labels["bench_session_state"]: s.value
                for s in fams["bench_session_state"].samples
            }
            assert state["complete"] == 1

    asyncio.run(main())


def test_bridge_survives_a_killed_publisher_and_sees_the_restart(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"

    async def main() -> None:
        collector = SnapshotCollector(labels={"run_id": "restart"}, stale_after=0.5)
        async with Bridge(endpoint, collector, watch_interval=0.05) as bridge:
            first = start_publisher(endpoint, tmp_path / "a", "--no-final", "--interval", "0.02")
            try:
                assert await async_wait_until(lambda: bridge.accepted >= 30, 20)
            finally:
                first.stop(signal.SIGKILL)
            high = collector.snapshot.counter
            assert await async_wait_until(lambda: not collector.health()["up"], 10)
            assert (
                parse_strict(openmetrics_exposition(collector))["bench_exporter_up"]
                .samples[0]
                .value
                == 0
            )
            second = start_publisher(
                endpoint, tmp_path / "b", "--ticks", "10", "--interval", "0.02"
            )
            try:
                final = await bridge.wait_for_terminal(30)
            finally:
                second.stop()
            assert final is not None and final.state is SessionState.COMPLETE
            assert final.counter < high  # the sequence started again
            assert bridge.restarts == 1
            assert collector.health()["up"] is True
            on_disk = snapshot_from_dict(
                json.loads((tmp_path / "b" / "final_snapshot.json").read_text())
            )
            assert same_values(collector.snapshot, on_disk)

    asyncio.run(main())


def test_malformed_frames_are_counted_and_skipped() -> None:
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"

    async def main() -> None:
        collector = SnapshotCollector(labels={"run_id": "bad"})
        ctx = zmq.Context.instance()
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(endpoint)
        try:
            async with Bridge(endpoint, collector, watch_interval=0.05):
                _, good = SnapshotCodec().encode(spec_snapshot(n=5))

                def delivered() -> bool:
                    pub.send(SNAPSHOT_TOPIC + good)  # resent until the SUB is joined
                    return collector.snapshot is not None

                assert await async_wait_until(delivered, 10, interval=0.02)
                for junk in (
                    b"\x93\x01",
                    b"not msgpack",
                    msgspec.msgpack.encode([1, 2, "x", 4, []]),
                ):
                    pub.send(SNAPSHOT_TOPIC + junk)
                pub.send(b"short")
                pub.send_multipart([SNAPSHOT_TOPIC, good])  # two frames: not the wire format

                def errors() -> float:
                    fams = parse_strict(openmetrics_exposition(collector))
                    return fams["bench_exporter_decode_errors"].samples[0].value

                assert await async_wait_until(lambda: errors() == 5, 10)
                assert collector.snapshot is not None and collector.health()["decode_errors"] == 5
        finally:
            pub.close()

    asyncio.run(main())


def test_frames_without_hdr_are_served_as_summaries() -> None:
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    raw = msgspec.msgpack.decode(SnapshotCodec().encode(spec_snapshot(n=40))[1])
    for m in raw[4]:
        if m[0] == "series":
            del m[9:]  # mlcommons/endpoints frames stop after the display histogram
    payload = msgspec.msgpack.encode(raw)

    async def main() -> None:
        collector = SnapshotCollector(labels={"run_id": "mlc"})
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(endpoint)
        try:
            async with Bridge(endpoint, collector):

                def delivered() -> bool:
                    pub.send(SNAPSHOT_TOPIC + payload)
                    return collector.snapshot is not None

                assert await async_wait_until(delivered, 10, interval=0.02)
        finally:
            pub.close()
        fams = parse_strict(openmetrics_exposition(collector))
        assert "bench_ttft_seconds" not in fams
        count = find(
            fams["bench_ttft_quantiles_seconds"].samples, "bench_ttft_quantiles_seconds_count"
        )
        assert count[0].value == 40

    asyncio.run(main())


# -- the command ----------------------------------------------------------------------


def test_export_serves_the_run_lingers_on_the_final_values_then_exits(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/snap.sock"
    export, url = start_export(
        "--connect", endpoint, "--listen", "127.0.0.1:0", "--run-id", 'cli"run',
        "--label", "model=llama", "--label", "scenario=server", "--linger", "2",
    )  # fmt: skip
    try:
        publisher = start_publisher(endpoint, tmp_path, "--ticks", "30", "--interval", "0.03")
        assert wait_until(lambda: export.find("final snapshot #") is not None, 30)
        publisher.stop()
        text = scrape(url)
        final = snapshot_from_dict(json.loads((tmp_path / "final_snapshot.json").read_text()))
        s = samples(text)
        assert (
            find(s, "bench_samples_issued_total", window="all")[0].value
            == final.counters["total_samples_issued"]
        )
        p99 = find(s, "bench_ttft_quantiles_seconds", quantile="0.99")[0]
        assert p99.value == final.series["ttft_ns"].percentile(99) / 1e9
        assert p99.labels["run_id"] == 'cli"run' and p99.labels["model"] == "llama"
        info = find(s, "bench_run_info")[0]
        assert info.labels["scenario"] == "server"
        t0 = time.monotonic()
        assert export.proc.wait(15) == 0  # exits by itself after the linger
        assert time.monotonic() - t0 < 5
    finally:
        export.stop()


def test_export_stops_on_sigterm(tmp_path: Path) -> None:
    export, url = start_export("--connect", f"ipc://{tmp_path}/none.sock", "--listen", ":0")
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
        assert json.loads(resp.read())["up"] is False
    assert export.stop(signal.SIGTERM) == 143  # stopped before any final snapshot


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connect", "localhost:5557"], "--connect"),
        (["--connect", "ipc:///x", "--label", "novalue"], "KEY=VALUE"),
        (["--connect", "ipc:///x", "--label", "le=1"], "reserved"),
        (["--connect", "ipc:///x", "--label", "run_id=1"], "--run-id"),
        (["--connect", "ipc:///x", "--listen", "host:port"], "--listen"),
        (["--connect", "ipc:///x", "--web-config", "/nonexistent/web.yml"], "--web-config"),
        (["--connect", "ipc:///x", "--linger", "-1"], "--linger"),
    ],
)
def test_export_rejects_bad_input_with_one_line(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "COMMANDS", ("export",))
    assert cli.main(["export", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench-metrics export: error:") and message in err[0]
