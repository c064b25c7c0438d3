"""In-process mirroring: an AggregatorService with ``aggregate --listen``'s mirror attached
serves every tick, then the exact final values for the linger, over real sockets."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from exporter.cli.commands.aggregate import add_parser
from exporter.cli.errors import UsageError
from exporter.cli.mirror_args import ExporterOptions, exporter_options
from exporter.http.web_config import WebConfig
from exporter.prometheus.mirror import mirror_service
from registry import SessionState, snapshot_from_dict
from registry.aggregator import AggregatorService
from registry.events import EventPublisher
from tests.support.aggregator_scenario import SCENARIO, SCENARIO_COUNTERS
from tests.support.exporter_support import find, parse_strict, samples
from tests.support.helpers import async_wait_until

WAIT_S = 20.0


def options(**kw: object) -> ExporterOptions:
    base: dict[str, object] = {
        "listen": ("127.0.0.1", 0),
        "web_config": WebConfig(),
        "linger": 1.0,
        "pushgateway": None,
        "push_job": "bench_metrics",
        "namespace": "bench",
        "stale_after": 10.0,
    }
    base.update(kw)
    return ExporterOptions(**base)  # type: ignore[arg-type]


def get_text(url: str) -> str:
    req = urllib.request.Request(
        url + "/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode()


@pytest.mark.parametrize("own_thread", [False, True])
def test_aggregator_mirror_serves_ticks_then_lingers_on_the_final(
    tmp_path: Path, own_thread: bool, caplog: pytest.LogCaptureFixture
) -> None:
    events_ep, out = f"ipc://{tmp_path}/ev.sock", tmp_path / "out"
    service = AggregatorService(
        events_endpoint=events_ep,
        snapshots_endpoint=f"ipc://{tmp_path}/snap.sock",
        output_dir=out,
        streaming=True,
        interval_s=0.02,
        run_id="agg-listen",
        labels={"model": "tiny"},
        handle_signals=False,
    )
    mirror = mirror_service(service, options(linger=1.5), own_thread=own_thread)
    assert mirror is not None and mirror.url is not None
    url = mirror.url
    scraped_final: list[str] = []

    async def main() -> tuple[int, float]:
        with EventPublisher(events_ep) as pub:
            task = asyncio.create_task(service.run())
            assert await pub.wait_for_subscriber(WAIT_S)
            pub.send_many(SCENARIO[:10])
            assert await async_wait_until(lambda: mirror.collector.snapshot is not None, WAIT_S)
            live = await asyncio.to_thread(get_text, url)
            assert 'bench_session_state{bench_session_state="live"' in live
            pub.send_many(SCENARIO[10:])

            def final_served() -> bool:
                snap = mirror.collector.snapshot
                return snap is not None and snap.is_terminal

            assert await async_wait_until(final_served, WAIT_S)
            t_final = time.monotonic()
            # the run is over (files written) but the mirror still serves: the linger
            scraped_final.append(await asyncio.to_thread(get_text, url))
            rc = await asyncio.wait_for(task, WAIT_S)
            return rc, time.monotonic() - t_final

    try:
        rc, lingered = asyncio.run(main())
    finally:
        mirror.close()
    assert rc == 0 and lingered >= 1.0
    final = snapshot_from_dict(json.loads((out / "final_snapshot.json").read_text()))
    assert final.counters == SCENARIO_COUNTERS
    s = samples(scraped_final[0])
    for name, window in (("total_samples_issued", "all"), ("tracked_samples_issued", "tracked")):
        got = find(s, "bench_samples_issued_total", window=window)[0]
        assert got.value == final.counters[name] and got.labels["model"] == "tiny"
    p50 = find(s, "bench_ttft_quantiles_seconds", quantile="0.5")[0]
    assert p50.value == final.series["ttft_ns"].percentile(50) / 1e9
    fams = parse_strict(scraped_final[0])
    assert fams["bench_tracked_duration_seconds"].type == "gauge"  # settable → gauge
    states = {x.labels["bench_session_state"]: x.value for x in fams["bench_session_state"].samples}
    assert states[SessionState.COMPLETE.value] == 1
    with pytest.raises(OSError):  # the server is gone after the linger
        get_text(url)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_aggregate_without_listen_has_no_mirror(tmp_path: Path) -> None:
    service = AggregatorService(
        events_endpoint=f"ipc://{tmp_path}/e.sock",
        snapshots_endpoint=f"ipc://{tmp_path}/s.sock",
        output_dir=tmp_path,
    )
    assert mirror_service(service, options(listen=None)) is None


def test_aggregate_exporter_options_fail_before_the_run(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    base = ["aggregate", "--events", "ipc:///e", "--snapshots", "ipc:///s", "--output-dir"]
    with pytest.raises(SystemExit):  # the command line refuses it while parsing
        parser.parse_args([*base, str(tmp_path), "--listen", "nohost:x"])
    args = parser.parse_args([*base, str(tmp_path)])
    args.listen = "nohost:x"  # and so does the in-process path
    with pytest.raises(UsageError, match="--listen"):
        exporter_options(args)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service = AggregatorService(
            events_endpoint=f"ipc://{tmp_path}/e.sock",
            snapshots_endpoint=f"ipc://{tmp_path}/s.sock",
            output_dir=tmp_path,
        )
        with pytest.raises(UsageError, match="cannot listen"):
            mirror_service(service, options(listen=("127.0.0.1", port)))
    args = parser.parse_args([*base, str(tmp_path), "--listen", ":0"])
    service = AggregatorService(
        events_endpoint="ipc:///e", snapshots_endpoint="ipc:///s", output_dir=tmp_path,
        labels={"le": "1"},
    )  # fmt: skip
    with pytest.raises(UsageError, match="reserved"):
        mirror_service(service, exporter_options(args))


def test_demo_refuses_a_busy_listen_port_before_starting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import exporter.cli.main as cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["demo", "--no-tui", "--listen", f"127.0.0.1:{port}", "--output-dir", str(tmp_path)]
        assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"bench-metrics demo: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert not list(tmp_path.iterdir())
