"""The aggregator service over real sockets, files, subprocesses and signals.

A real EventPublisher feeds a real aggregator, either in-process on its own
loop or as ``python -m exporter.cli.main aggregate`` in a subprocess; the final
files are read back from disk and checked against the hand-computed scenario
of ``aggregator_scenario.py``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema
import msgspec
import pytest
import zmq

from exporter.cli.main import main
from registry import MetricsSnapshot, SessionState, SnapshotSubscriber, snapshot_from_dict
from registry.aggregator import AggregatorService
from registry.delivery.snapshot_codec import pad_topic
from registry.events import EventCodec, EventPublisher, EventRecord, EventType
from registry.report.summary import load_schema
from registry.transport import build_batch
from tests.support.aggregator_scenario import SCENARIO, SCENARIO_COUNTERS, SCENARIO_SERIES, ev
from tests.support.helpers import async_wait_until

T = EventType
REPO = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(load_schema())
WAIT_S = 20.0

# The scenario with a duplicate session.started in the middle (ignored).
SCENARIO_WITH_DUPLICATE = [*SCENARIO[:3], ev(T.SESSION_STARTED, 2050), *SCENARIO[3:]]
# The scenario without sample F (the one left in flight): nothing pending at the end.
SCENARIO_COMPLETE = [e for e in SCENARIO_WITH_DUPLICATE if e.sample_uuid != "F"]
SCENARIO_COMPLETE_COUNTERS = {
    **SCENARIO_COUNTERS,
    "total_samples_issued": 7,
    "tracked_samples_issued": 5,
}
SCENARIO_COMPLETE_SERIES = {**SCENARIO_SERIES, "isl": [10, 20, 30, 7, 2]}  # F's isl gone


def endpoints(d: Path) -> tuple[str, str]:
    return f"ipc://{d}/events.sock", f"ipc://{d}/snapshots.sock"


def read_final(out: Path) -> tuple[MetricsSnapshot, dict]:
    snap = snapshot_from_dict(json.loads((out / "final_snapshot.json").read_text()))
    report = json.loads((out / "result_summary.json").read_text())
    VALIDATOR.validate(report)
    return snap, report


def check_scenario_series(snap: MetricsSnapshot, expected: dict | None = None) -> None:
    for name, values in (expected or SCENARIO_SERIES).items():
        s = snap.series[name]
        assert (s.count, s.total, s.min, s.max) == (
            len(values),
            sum(values),
            min(values),
            max(values),
        ), name
        assert s.sum_sq == sum(v * v for v in values), name
        assert s.percentile(50) == sorted(values)[(len(values) + 1) // 2 - 1], name


# -- in-process --------------------------------------------------------------


def test_scenario_in_process_with_listeners_and_hooks(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events_ep, snapshots_ep = endpoints(workdir)
    out = workdir / "out"
    seen: list[MetricsSnapshot] = []
    calls: list[str] = []

    async def main_() -> int:
        async def on_start() -> None:
            calls.append(f"start applied={service.events_applied}")

        async def on_stop() -> None:
            present = (out / "final_snapshot.json").exists() and (
                out / "result_summary.json"
            ).exists()
            calls.append(f"stop files={present}")

        service = AggregatorService(
            events_endpoint=events_ep,
            snapshots_endpoint=snapshots_ep,
            output_dir=out,
            streaming=True,
            interval_s=0.02,
            run_id="in-process",
            labels={"model": "tiny"},
            listeners=[seen.append],
            on_start=[on_start],
            on_stop=[on_stop],
            handle_signals=False,
        )
        with EventPublisher(events_ep) as pub:
            task = asyncio.create_task(service.run())
            assert await pub.wait_for_subscriber(WAIT_S)
            pub.send(SCENARIO_WITH_DUPLICATE[0])
            pub.send_many(SCENARIO_WITH_DUPLICATE[1:20])
            # Let at least one live tick see part of the run.
            assert await async_wait_until(lambda: len(seen) >= 1, WAIT_S)
            pub.send_many(SCENARIO_WITH_DUPLICATE[20:])
            rc = await asyncio.wait_for(task, WAIT_S)
        assert service.session.state is SessionState.COMPLETE
        assert service.report is not None and service.report["source"] == "file"
        return rc

    with caplog.at_level("WARNING"):
        assert asyncio.run(main_()) == 0
    assert any("session.started" in r.getMessage() for r in caplog.records)
    snap, report = read_final(out)
    assert snap.state is SessionState.COMPLETE
    assert snap.n_pending_tasks == 0  # pending tokenizations: none without a tokenizer
    assert snap.counters == SCENARIO_COUNTERS
    check_scenario_series(snap)
    # F and G never completed: a normal end of a session, not an incomplete report
    assert report["complete"] is True
    assert report["samples"]["tracked"]["in_flight"] == 2
    assert report["run"] == {**report["run"], "run_id": "in-process", "labels": {"model": "tiny"}}
    # Listeners: live snapshots first, exactly one terminal one, last.
    assert [s.is_terminal for s in seen].count(True) == 1 and seen[-1].is_terminal
    assert seen[-1].counters == SCENARIO_COUNTERS
    assert calls == ["start applied=0", "stop files=True"]


def raw_frames() -> list[list[bytes]]:
    """Valid events interleaved with every kind of garbage a socket can carry."""
    codec = EventCodec()

    def frame(e: EventRecord) -> list[bytes]:
        return [b"".join(codec.encode(e))]

    unknown = {"event_type": "sample.teleported", "timestamp_ns": 5, "sample_uuid": "x"}
    return [
        frame(ev(T.SESSION_STARTED, 0)),
        frame(ev(T.SESSION_START_PERFORMANCE_TRACKING, 0)),
        [pad_topic("sample.teleported") + msgspec.msgpack.encode(unknown)],  # unknown type
        [pad_topic("sample.issued") + b"\xc1 not msgpack"],  # undecodable payload
        [b"short-topic"],  # shorter than a topic
        [pad_topic("batch") + b"\x93\x01\x02"],  # batch that is not an array of payloads
        [pad_topic("sample.issued"), b"\x80"],  # two frames: not the wire format
        frame(ev(T.SAMPLE_ISSUED, 10, "a", input_tokens=3)),
        [
            b"".join(
                build_batch(
                    [
                        codec.encode(ev(T.SAMPLE_COMPLETE, 30, "a", output_tokens=2))[1],
                        b"\x01",  # a bare int inside a valid batch
                    ]
                )
            )
        ],
        frame(ev(T.SESSION_ENDED, 40)),
    ]


def test_malformed_and_unknown_events_are_counted_and_skipped(workdir: Path) -> None:
    events_ep, snapshots_ep = endpoints(workdir)
    out = workdir / "out"

    async def main_() -> int:
        service = AggregatorService(
            events_endpoint=events_ep,
            snapshots_endpoint=snapshots_ep,
            output_dir=out,
            handle_signals=False,
        )
        ctx = zmq.Context.instance()
        pub = ctx.socket(zmq.XPUB)
        pub.bind(events_ep)
        try:
            task = asyncio.create_task(service.run())
            poller = zmq.Poller()
            poller.register(pub, zmq.POLLIN)
            assert await asyncio.to_thread(poller.poll, WAIT_S * 1000), "no subscription"
            for frames in raw_frames():
                pub.send_multipart(frames)
            return await asyncio.wait_for(task, WAIT_S)
        finally:
            pub.close(linger=0)

    assert asyncio.run(main_()) == 0
    snap, report = read_final(out)
    c = snap.counters
    assert c["events_malformed"] == 6
    assert c["tracked_samples_issued"] == 1 and c["tracked_samples_completed"] == 1
    assert snap.series["sample_latency_ns"].total == 20
    assert report["complete"] is True


def test_report_falls_back_to_the_terminal_snapshot_when_the_file_fails(workdir: Path) -> None:
    events_ep, snapshots_ep = endpoints(workdir)
    out = workdir / "out"
    (out / "final_snapshot.json").mkdir(parents=True)  # the rename onto it must fail

    async def main_() -> int:
        service = AggregatorService(
            events_endpoint=events_ep,
            snapshots_endpoint=snapshots_ep,
            output_dir=out,
            streaming=True,
            interval_s=0.02,
            handle_signals=False,
        )
        async with SnapshotSubscriber(snapshots_ep) as sub:
            with EventPublisher(events_ep) as pub:
                task = asyncio.create_task(service.run())
                assert await pub.wait_for_subscriber(WAIT_S)
                # Connected to the stream once a live snapshot arrived (nothing is
                # published before session.started, as upstream publishes nothing).
                pub.send(SCENARIO_COMPLETE[0])
                assert await async_wait_until(lambda: sub.latest is not None, WAIT_S)
                pub.send_many(SCENARIO_COMPLETE[1:])
                rc = await asyncio.wait_for(task, WAIT_S)
            terminal = await sub.wait_for_terminal(WAIT_S)
        # The file failed; the stream did not.
        assert terminal is not None and terminal.state is SessionState.COMPLETE
        return rc

    assert asyncio.run(main_()) == 3  # a final file is missing: the exit code says so
    report = json.loads((out / "result_summary.json").read_text())
    VALIDATOR.validate(report)
    assert report["source"] == "terminal_frame"
    assert "final_snapshot.json unusable" in report["source_reason"]
    assert report["complete"] is True
    assert report["samples"]["tracked"]["completed"] == 4


@pytest.mark.parametrize("n_events", [0, 7])
def test_interrupt_at_any_point_writes_what_was_received(workdir: Path, n_events: int) -> None:
    """``interrupt()`` (what the signal handlers call), before any event or mid-run."""
    events_ep, snapshots_ep = endpoints(workdir)
    out = workdir / "out"

    async def main_() -> tuple[int, AggregatorService]:
        service = AggregatorService(
            events_endpoint=events_ep,
            snapshots_endpoint=snapshots_ep,
            output_dir=out,
            streaming=True,
            handle_signals=False,
        )
        with EventPublisher(events_ep) as pub:
            task = asyncio.create_task(service.run())
            assert await pub.wait_for_subscriber(WAIT_S)
            pub.send_many(SCENARIO[:n_events])
            assert await async_wait_until(lambda: service.events_applied == n_events, WAIT_S)
            # From another thread, as a signal handler or a supervisor would.
            await asyncio.to_thread(service.interrupt, signal.SIGINT)
            return await asyncio.wait_for(task, WAIT_S), service

    rc, service = asyncio.run(main_())
    assert rc == 130
    snap, report = read_final(out)
    assert snap.state is SessionState.INTERRUPTED is service.session.state
    assert snap.counters["total_samples_issued"] == (4 if n_events else 0)  # u0 A B C
    assert snap.n_pending_tasks == 0
    assert service.metrics.n_in_flight == (3 if n_events else 0)  # A B C
    assert report["complete"] is False and "interrupted" in report["incomplete_reason"]


# -- through the real command line ------------------------------------------


def start_cli(workdir: Path, *extra: str) -> tuple[subprocess.Popen[str], str, str, Path]:
    events_ep, snapshots_ep = endpoints(workdir)
    out = workdir / "out"
    cmd = [
        sys.executable,
        "-m",
        "exporter.cli.main",
        "aggregate",
        "--events",
        events_ep,
        "--snapshots",
        snapshots_ep,
        "--output-dir",
        str(out),
        "--interval",
        "0.05",
        *extra,
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    return proc, events_ep, snapshots_ep, out


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"aggregator did not exit; stderr:\n{err}")
    return proc.returncode, err


def test_cli_end_to_end_complete_run(workdir: Path) -> None:
    proc, events_ep, snapshots_ep, out = start_cli(
        workdir, "--streaming", "--run-id", "e2e", "--label", "model=tiny", "--label", "sut=x"
    )

    async def drive() -> MetricsSnapshot | None:
        async with SnapshotSubscriber(snapshots_ep) as sub:
            with EventPublisher(events_ep) as pub:
                assert await pub.wait_for_subscriber(WAIT_S), "aggregator never subscribed"
                pub.send(SCENARIO_COMPLETE[0])  # session.started: snapshots begin
                assert await async_wait_until(lambda: sub.latest is not None, WAIT_S)
                for e in SCENARIO_COMPLETE[1:]:  # one message per event
                    pub.send(e)
                return await sub.wait_for_terminal(WAIT_S)

    try:
        terminal = asyncio.run(drive())
    finally:
        rc, err = finish(proc)
    assert rc == 0, err
    assert terminal is not None and terminal.state is SessionState.COMPLETE
    snap, report = read_final(out)
    assert snap.state is SessionState.COMPLETE and snap.n_pending_tasks == 0
    assert snap.counters == SCENARIO_COMPLETE_COUNTERS
    check_scenario_series(snap, SCENARIO_COMPLETE_SERIES)
    assert report["complete"] is True and report["incomplete_reason"] is None
    assert report["run"]["run_id"] == "e2e"
    assert report["run"]["labels"] == {"model": "tiny", "sut": "x"}
    assert report["qps"] == pytest.approx(4 / 1900e-9)
    assert "ignoring session.started" in err  # the duplicate, logged once
    assert "Traceback" not in err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_cli_signal_mid_run_writes_interrupted_files(
    workdir: Path, signum: signal.Signals, code: int
) -> None:
    proc, events_ep, snapshots_ep, out = start_cli(workdir, "--streaming")
    n_done, n_open = 50, 3
    events = [ev(T.SESSION_STARTED, 0), ev(T.SESSION_START_PERFORMANCE_TRACKING, 0)]
    for i in range(n_done):
        t = 1000 * (i + 1)
        events += [
            ev(T.SAMPLE_ISSUED, t, f"s{i}", input_tokens=10),
            ev(T.SAMPLE_RECV_FIRST, t + 100, f"s{i}"),
            ev(T.SAMPLE_COMPLETE, t + 300, f"s{i}", output_tokens=3, finish_reason="stop"),
        ]
    events += [ev(T.SAMPLE_ISSUED, 10**6 + i, f"open{i}") for i in range(n_open)]

    async def drive() -> MetricsSnapshot | None:
        async with SnapshotSubscriber(snapshots_ep) as sub:
            with EventPublisher(events_ep) as pub:
                assert await pub.wait_for_subscriber(WAIT_S), "aggregator never subscribed"
                pub.send_many(events)

                def caught_up() -> bool:
                    s = sub.latest
                    return s is not None and s.counters.get("total_samples_issued") == (
                        n_done + n_open
                    )

                # Synchronise on the aggregator's own stream, never on time.
                assert await async_wait_until(caught_up, WAIT_S), "aggregator never caught up"
                proc.send_signal(signum)
                return await sub.wait_for_terminal(WAIT_S)

    try:
        terminal = asyncio.run(drive())
    finally:
        rc, err = finish(proc)
    assert rc == code, err
    assert terminal is not None and terminal.state is SessionState.INTERRUPTED
    snap, report = read_final(out)
    assert snap.state is SessionState.INTERRUPTED
    assert snap.counters["tracked_samples_completed"] == n_done
    assert snap.n_pending_tasks == 0
    assert snap.series["ttft_ns"].count == n_done and snap.series["ttft_ns"].max == 100
    assert snap.series["tpot_ns"].total == pytest.approx(n_done * 100.0)  # (300-100)/(3-1)
    assert report["complete"] is False
    assert "interrupted" in report["incomplete_reason"]
    assert report["samples"]["tracked"]["in_flight"] == n_open
    assert signum.name in err


# -- command-line errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "localhost:5555"], "--events: endpoint 'localhost:5555' must start"),
        (["--snapshots", "tcp://127.0.0.1"], "endpoint 'tcp://127.0.0.1' needs a port"),
        (["--interval", "0"], "--interval must be a finite number of seconds > 0"),
        (["--label", "novalue"], "--label 'novalue': expected KEY=VALUE"),
        (["--label", "a=1", "--label", "a=2"], "key 'a' given twice"),
    ],
)
def test_bad_command_lines_exit_2_with_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    events_ep, snapshots_ep = endpoints(workdir)
    base = {"--events": events_ep, "--snapshots": snapshots_ep, "--output-dir": str(workdir)}
    for flag in args[::2]:
        base.pop(flag, None)
    argv = ["aggregate", *[x for kv in base.items() for x in kv], *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


def test_output_dir_that_is_a_file_and_busy_snapshot_endpoint_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events_ep, snapshots_ep = endpoints(workdir)
    a_file = workdir / "file"
    a_file.write_text("x")
    argv = ["aggregate", "--events", events_ep, "--snapshots", snapshots_ep]
    assert main([*argv, "--output-dir", str(a_file)]) == 2
    assert "is not a directory" in capsys.readouterr().err
    busy = zmq.Context.instance().socket(zmq.PUB)
    busy.bind("tcp://127.0.0.1:0")
    port_ep = busy.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        argv = ["aggregate", "--events", events_ep, "--snapshots", port_ep]
        assert main([*argv, "--output-dir", str(workdir / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert f"cannot bind {port_ep}" in err and "\n" not in err, err
    finally:
        busy.close(linger=0)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["aggregate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--events ENDPOINT" in out and "143" in out


def test_every_live_snapshot_has_series_that_agree_with_its_counters(workdir: Path) -> None:
    """Snapshots are captured on the aggregator's loop between two event batches, so
    at every tick the series hold exactly the samples their counters counted."""
    from registry.events.synthetic import SyntheticLoad, drive

    events_ep, snapshots_ep = endpoints(workdir)
    seen: list[MetricsSnapshot] = []

    async def main_() -> int:
        service = AggregatorService(
            events_endpoint=events_ep,
            snapshots_endpoint=snapshots_ep,
            output_dir=workdir / "out",
            streaming=True,
            interval_s=0.01,
            listeners=[seen.append],
            handle_signals=False,
        )
        with EventPublisher(events_ep) as pub:
            task = asyncio.create_task(service.run())
            assert await pub.wait_for_subscriber(WAIT_S)
            await drive(SyntheticLoad(qps=400, duration_s=1.5, seed=5), pub.send_many)
            return await asyncio.wait_for(task, WAIT_S)

    assert asyncio.run(main_()) == 0
    live = [s for s in seen if not s.is_terminal and s.counters["tracked_samples_completed"]]
    assert len(live) >= 10
    for snap in [*live, seen[-1]]:
        c = snap.counters
        # isl is recorded at issue, the latency at completion (failed ones included)
        assert snap.series["isl"].count == c["tracked_samples_issued"], snap.counter
        assert snap.series["sample_latency_ns"].count == c["tracked_samples_completed"]
