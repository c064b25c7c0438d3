"""Compatibility with mlcommons/endpoints on streams recorded from its REAL client.

Sessions C, D and E are what upstream's own ``inference-endpoint benchmark``
(its HTTP load generator against its own test servers) sent on the event
socket, byte for byte; the ``*.upstream*`` directories are what upstream's own
aggregator wrote for exactly those bytes
(``tests/data/mlcommons-endpoints/README.md``, section "Real-client sessions").
The real client stamps a completion in its worker and the chunk receives in
its main process, so 39-51 % of streamed completions are stamped before one
of their chunks: normal input that must be counted as upstream counts it.

Each session is replayed into a real aggregator process over a real ZeroMQ
socket: with the tokenizer through ``python -m exporter.upstream`` and the
argument list upstream's launcher passes, without it through
``bench-metrics aggregate``. The expected data-quality count is computed here
from the frames by a decoder written from SPEC §4-§5 (plain msgpack), not by
our codec.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq
from test_upstream_compat import WAIT_S, diff_final_snapshots, replay_events

from tests.support.cli_process import bench_metrics
from tests.support.upstream_fixtures import FIXTURES, TOKENIZER_DIR, load_json, read_frames

SESSIONS = ("c", "d", "e")
STREAMING = {"c": True, "d": True, "e": False}
#: Completed counts upstream's aggregator reported (fixture README).
UPSTREAM_COMPLETED = {"c": 3001, "d": 1001, "e": 2001}


# -- a decoder written from the SPEC (§4 framing, §5 records), not our codec ------------


def spec_records(frames: list[bytes]) -> list[dict[str, Any]]:
    """Every record of the recorded messages, in wire order, as plain msgpack maps."""
    out: list[dict[str, Any]] = []
    for frame in frames:
        topic, payload = frame[:40].rstrip(b"\0"), frame[40:]
        if topic == b"batch":
            out.extend(msgspec.msgpack.decode(p) for p in msgspec.msgpack.decode(payload))
        else:
            out.append(msgspec.msgpack.decode(payload))
    return out


def completions_stamped_before_a_chunk(records: list[dict[str, Any]]) -> int:
    """Tracked samples whose ``sample.complete`` timestamp precedes one of their receives."""
    tracking = False
    tracked: set[str] = set()
    latest_recv: dict[str, int] = {}
    n = 0
    for r in records:
        kind, uuid, ts = r["event_type"], r.get("sample_uuid", ""), r["timestamp_ns"]
        if kind == "session.start_performance_tracking":
            tracking = True
        elif kind == "session.stop_performance_tracking":
            tracking = False
        elif kind == "sample.issued" and tracking:
            tracked.add(uuid)
        elif kind in ("sample.recv_first", "sample.recv_non_first") and uuid in tracked:
            latest_recv[uuid] = max(ts, latest_recv.get(uuid, ts))
        elif kind == "sample.complete" and uuid in tracked:
            tracked.discard(uuid)
            if ts < latest_recv.pop(uuid, ts):
                n += 1
    return n


# -- the replays ----------------------------------------------------------------------


def upstream_argv(socket_dir: Path, out: Path, session: str, *, tokenizer: bool) -> list[str]:
    """What upstream's benchmark passes its aggregator (fixture README, step 3), minus
    readiness (tested in test_upstream_compat)."""
    argv = [
        "--socket-dir",
        str(socket_dir),
        "--socket-name",
        "ev_pub_0a1b2c3d",
        "--metrics-socket",
        "metrics_pub_0a1b2c3d",
        "--metrics-output-dir",
        str(out),
    ]
    if STREAMING[session]:
        argv.append("--streaming")
    argv.append("--early-stopping")
    if tokenizer:
        argv += ["--tokenizer", str(TOKENIZER_DIR)]
    return [*argv, "--drain-timeout", "0.0", "--tokenizer-workers", "4"]


def replay_session(session: str, *, tokenizer: bool, workdir: Path) -> tuple[dict[str, Any], str]:
    """Our final snapshot for a real-client session, and the aggregator's stderr."""
    frames = read_frames(FIXTURES / f"session-{session}.frames")
    out = workdir / "metrics"
    if tokenizer:  # upstream's launch mode
        cmd = [
            sys.executable,
            "-m",
            "exporter.upstream",
            *upstream_argv(workdir, out, session, tokenizer=True),
        ]
        events = f"ipc://{workdir}/ev_pub_0a1b2c3d"
    else:
        events = f"ipc://{workdir}/ev.sock"
        cmd = [
            *bench_metrics(),
            "aggregate",
            "--events",
            events,
            "--snapshots",
            f"ipc://{workdir}/met.sock",
            "--output-dir",
            str(out),
            "--percentile-method",
            "numpy-lower",
            *(["--streaming"] if STREAMING[session] else []),
        ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        replay_events(events, frames, proc)
        _, err = proc.communicate(timeout=WAIT_S * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return json.loads((out / "final_snapshot.json").read_text()), err


_CACHE: dict[tuple[str, bool], tuple[dict[str, Any], str]] = {}


@pytest.fixture(scope="module")
def replayed() -> Iterator[Any]:
    """Replays each (session, tokenizer) once for the whole module."""
    dirs: list[Path] = []

    def get(session: str, tokenizer: bool) -> tuple[dict[str, Any], str]:
        key = (session, tokenizer)
        if key not in _CACHE:
            if tokenizer:
                pytest.importorskip("transformers", reason="needs bench-metrics[tokenizer]")
            d = Path(tempfile.mkdtemp(prefix="bm-rc-"))
            dirs.append(d)
            _CACHE[key] = replay_session(session, tokenizer=tokenizer, workdir=d)
        return _CACHE[key]

    try:
        yield get
    finally:
        _CACHE.clear()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def _counters(snap: dict[str, Any]) -> dict[str, Any]:
    return {m["name"]: m["value"] for m in snap["metrics"] if m["type"] == "counter"}


@pytest.mark.parametrize("tokenizer", [True, False], ids=["tokenizer", "notok"])
@pytest.mark.parametrize("session", SESSIONS)
def test_real_client_session_equals_upstreams_final_snapshot(
    replayed: Any, session: str, tokenizer: bool
) -> None:
    ours, err = replayed(session, tokenizer)
    suffix = "upstream" if tokenizer else "upstream-notok"
    theirs = load_json(FIXTURES / f"session-{session}.{suffix}" / "final_snapshot.json")
    diffs = diff_final_snapshots(ours, theirs)
    n_fields = sum(len(m) for m in theirs["metrics"]) + 2
    print(f"session {session.upper()} ({suffix}): {len(diffs)} of {n_fields} fields differ")
    assert diffs == [], "\n".join(diffs)
    c = _counters(ours)
    assert c["tracked_samples_completed"] == c["total_samples_completed"]
    assert c["total_samples_completed"] == UPSTREAM_COMPLETED[session]
    assert c["events_out_of_order"] == c["events_malformed"] == c["events_unmatched"] == 0
    assert "Traceback" not in err and "warm-up failed" not in err


@pytest.mark.parametrize("session", SESSIONS)
def test_completions_stamped_before_a_chunk_are_counted(replayed: Any, session: str) -> None:
    ours, err = replayed(session, False)
    want = completions_stamped_before_a_chunk(
        spec_records(read_frames(FIXTURES / f"session-{session}.frames"))
    )
    got = _counters(ours)["samples_complete_before_chunk"]
    print(f"session {session.upper()}: {got} completions stamped before a chunk")
    assert got == want
    # the fixture README's figures: C 1,523 before their first chunk, D 965 before their last
    assert want == {"c": 1523, "d": 965, "e": 0}[session]
    if want:
        assert "stamped before" in err  # said once in the log, not per sample


def test_report_warns_about_the_ordering_and_keeps_upstreams_figures(replayed: Any) -> None:
    from registry.report.summary import build_report

    ours, _ = replayed("d", True)
    report = build_report(ours)
    theirs = load_json(FIXTURES / "session-d.upstream" / "result_summary.json")
    assert report["qps_legacy"] == pytest.approx(theirs["qps"], rel=1e-12)
    assert report["tps_legacy"] == pytest.approx(theirs["tps"], rel=1e-12)
    assert report["samples"]["tracked"]["in_flight"] == 0
    codes = {w["code"]: w for w in report["warnings"]}
    assert set(codes) == {"complete_before_chunk"}
    w = codes["complete_before_chunk"]
    assert w["count"] == 965
    assert "tpot_ns" in w["message"] and "chunk_delta_ns" in w["message"]
    assert report["complete"] is True


# -- upstream's launch mode: options from the environment -----------------------------


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        body: bytes = r.read()
    return body.decode()


def test_launch_mode_reads_options_from_the_environment_and_exits_promptly(
    workdir: Path,
) -> None:
    """Upstream's argument list plus BENCH_METRICS_* variables: /metrics is served during
    the session, nothing is on the snapshot stream before session.started, our report
    has its own name, and the process exits within 2 s of session.ended."""
    out = workdir / "metrics"
    env = {
        **os.environ,
        "BENCH_METRICS_LISTEN": "127.0.0.1:0",
        "BENCH_METRICS_LABEL": "host=ci",
        "BENCH_METRICS_ARGS": "--run-id rc-env-1",
        "BENCH_METRICS_LOG_LEVEL": "INFO",  # the program's own option, before the command
    }
    cmd = [
        sys.executable,
        "-m",
        "exporter.upstream",
        *upstream_argv(workdir, out, "c", tokenizer=False),
    ]
    frames = read_frames(FIXTURES / "session-c.frames")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    met = zmq.Context.instance().socket(zmq.SUB)
    met.setsockopt(zmq.SUBSCRIBE, b"")
    met.connect(f"ipc://{workdir}/metrics_pub_0a1b2c3d")
    pub = zmq.Context.instance().socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.bind(f"ipc://{workdir}/ev_pub_0a1b2c3d")
    lines: list[str] = []
    try:
        assert pub.poll(int(WAIT_S * 1000)), "the aggregator never subscribed"
        pub.recv()
        # where /metrics is served: the log says it (port 0 picks a free one)
        assert proc.stderr is not None
        url = None
        deadline = time.monotonic() + WAIT_S
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "the aggregator exited before serving /metrics"
            lines.append(line)
            m = re.search(r"serving /metrics at (http://127\.0\.0\.1:\d+)", line)
            url = m.group(1) if m else None
        assert url, "".join(lines)
        before = _scrape(url + "/metrics")
        assert 'run_id="rc-env-1"' in before and 'host="ci"' in before
        # nothing on the snapshot stream before session.started (upstream sends none)
        assert not met.poll(600), "a snapshot was published before session.started"
        # the session up to its last batch, then a scrape while it is live
        for frame in frames[:-1]:
            pub.send(frame)
        deadline = time.monotonic() + WAIT_S
        live = ""
        counted = re.compile(r"bench_samples_complete_before_chunk_total\{[^}]*\} 1523")
        while not counted.search(live):
            assert time.monotonic() < deadline, live[-2000:]
            live = _scrape(url + "/metrics")
        state = re.compile(r'bench_session_state\{[^}]*bench_session_state="live"[^}]*\} 1')
        assert state.search(live), live[-3000:]
        first = msgspec.msgpack.decode(met.recv()[40:])
        assert first[2] in ("live", "draining", "complete")
        pub.send(frames[-1])  # session.ended
        t_end = time.monotonic()
        err_rest = proc.communicate(timeout=WAIT_S)[1]
        exited_after = time.monotonic() - t_end
    finally:
        met.close(linger=0)
        pub.close(linger=0)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, "".join(lines) + err_rest
    print(f"exited {exited_after:.2f} s after session.ended")
    assert exited_after < 2.0, err_rest[-3000:]
    assert (out / "final_snapshot.json").is_file()
    assert not (out / "result_summary.json").exists()  # upstream's name is upstream's
    ours = json.loads((out / "bench_metrics_summary.json").read_text())
    assert ours["samples"]["tracked"]["completed"] == 3001
    assert ours["run"]["run_id"] == "rc-env-1"


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("BENCH_METRICS_LISTEN", "nowhere:99999", "BENCH_METRICS_LISTEN"),
        ("BENCH_METRICS_LINGER", "-3", "BENCH_METRICS_LINGER"),
        ("BENCH_METRICS_NO_SUCH_OPTION", "1", "BENCH_METRICS_NO_SUCH_OPTION"),
        ("BENCH_METRICS_STREAMING", "maybe", "BENCH_METRICS_STREAMING"),
        ("BENCH_METRICS_LOG_LEVEL", "LOUD", "BENCH_METRICS_LOG_LEVEL"),
        ("BENCH_METRICS_ARGS", "--listen 'unterminated", "BENCH_METRICS_ARGS"),
    ],
)
def test_a_bad_environment_value_is_one_line_and_exit_2(
    workdir: Path, var: str, value: str, needle: str
) -> None:
    env = {**os.environ, var: value}
    cmd = [
        sys.executable,
        "-m",
        "exporter.upstream",
        *upstream_argv(workdir, workdir / "m", "c", tokenizer=False),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=WAIT_S)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0], proc.stderr
