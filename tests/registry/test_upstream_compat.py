"""Compatibility with mlcommons/endpoints, measured on upstream's own bytes and output.

The frames were recorded from upstream's real ``EventPublisherService`` and
``MetricsPublisher``; the final files are what upstream's own aggregator wrote
for them (``tests/data/mlcommons-endpoints/README.md``). Every test here sends
those bytes, unchanged, over a real ZeroMQ socket into the real
``bench-metrics`` processes, and compares what comes out with upstream's
files field by field. Nothing is encoded by our own codecs on the way in.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from tests.support.cli_process import bench_metrics
from tests.support.upstream_fixtures import (
    SESSION_A_FRAMES,
    SESSION_A_UPSTREAM,
    SESSION_A_UPSTREAM_NOTOK,
    SNAPSHOT_FINAL,
    SNAPSHOT_FRAMES,
    TOKENIZER_DIR,
    load_json,
    read_frames,
)

WAIT_S = 30.0
REL = 1e-12


def replay_events(endpoint: str, frames: list[bytes], proc: subprocess.Popen[str]) -> None:
    """Bind ``endpoint`` and send each recorded message byte for byte, once subscribed."""
    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(endpoint)
    try:
        deadline = time.monotonic() + WAIT_S
        while not sock.poll(100):  # the aggregator's subscription
            assert proc.poll() is None, f"aggregator exited early ({proc.returncode})"
            assert time.monotonic() < deadline, "the aggregator never subscribed"
        sock.recv()
        for frame in frames:
            sock.send(frame)
    finally:
        sock.close(linger=int(WAIT_S * 1000))


def run_aggregate(workdir: Path, *extra: str) -> tuple[Path, str]:
    """``bench-metrics aggregate`` fed with session A; its output directory and stderr."""
    out = workdir / "out"
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
        "--streaming",
        *extra,
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        replay_events(events, read_frames(SESSION_A_FRAMES), proc)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out, err


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=REL, abs_tol=0.0)
    return bool(a == b and type(a) is type(b))


def diff_final_snapshots(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Every field of upstream's final snapshot that ours does not reproduce.

    Exact for integers and percentiles; floats that are sums (``total``,
    ``sum_sq``, histogram edges) to 1e-12 relative, the only freedom being the
    summation order. Every field upstream writes is compared; none is skipped.
    """
    diffs: list[str] = []
    for key in ("state", "n_pending_tasks"):
        if ours.get(key) != theirs[key]:
            diffs.append(f"{key}: ours {ours.get(key)!r}, upstream {theirs[key]!r}")
    mine = {m["name"]: m for m in ours["metrics"]}
    # Upstream's metrics in upstream's order (our extra counters follow its counters).
    theirs_names = [m["name"] for m in theirs["metrics"]]
    order = [m["name"] for m in ours["metrics"] if m["name"] in set(theirs_names)]
    if order != theirs_names:
        diffs.append(f"metric order differs: {order}")
    for m in theirs["metrics"]:
        name = m["name"]
        o = mine.get(name)
        if o is None:
            diffs.append(f"{name}: missing")
            continue
        for key, want in m.items():
            got = o.get(key)
            if key == "histogram":
                if len(got or []) != len(want):
                    diffs.append(f"{name}.histogram: {len(got or [])} buckets, want {len(want)}")
                    continue
                pairs = enumerate(zip(got, want, strict=True))
                for i, (((glo, ghi), gn), ((wlo, whi), wn)) in pairs:
                    if not (_close(float(glo), wlo) and _close(float(ghi), whi) and gn == wn):
                        diffs.append(f"{name}.histogram[{i}]: {got[i]} != {want[i]}")
            elif key in ("percentiles", "early_stopping_percentiles"):
                if not isinstance(got, dict) or set(got) != set(want):
                    diffs.append(f"{name}.{key}: keys {got!r} != {list(want)}")
                    continue
                for k, v in want.items():
                    if not (got[k] == v and type(got[k]) is type(v)):
                        diffs.append(f"{name}.{key}[{k}]: ours {got[k]!r}, upstream {v!r}")
            elif key in ("total", "sum_sq"):
                if not _close(got, want):
                    diffs.append(f"{name}.{key}: ours {got!r}, upstream {want!r}")
            elif not (got == want and type(got) is type(want)):
                diffs.append(f"{name}.{key}: ours {got!r}, upstream {want!r}")
        # A map upstream leaves out must be left out by us too.
        if "early_stopping_percentiles" not in m and o.get("early_stopping_percentiles"):
            diffs.append(f"{name}: early_stopping_percentiles present, upstream has none")
    return diffs


def test_session_a_into_aggregate_equals_upstreams_final_snapshot(workdir: Path) -> None:
    out, err = run_aggregate(workdir, "--percentile-method", "numpy-lower")
    ours = json.loads((out / "final_snapshot.json").read_text())
    theirs = load_json(SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json")
    diffs = diff_final_snapshots(ours, theirs)
    n_fields = sum(len(m) for m in theirs["metrics"]) + 2
    print(f"session A, no tokenizer: {len(diffs)} of {n_fields} upstream fields differ")
    assert diffs == [], "\n".join(diffs)
    assert ours["run"]["percentile_method"] == "numpy-lower"
    c = {m["name"]: m["value"] for m in ours["metrics"] if m["type"] == "counter"}
    assert c["events_malformed"] == c["events_out_of_order"] == 0
    assert "Traceback" not in err


# -- with upstream's tokenizer (session-a.upstream/) ---------------------------------

#: What a tokenizer decides: the three token series (the rest is checked above).
TOKEN_SERIES = ("isl", "osl", "tpot_ns")


@pytest.fixture(scope="module")
def session_a_tokenized() -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """Session A replayed once into ``aggregate --tokenizer`` (the fixture's tokenizer):
    our final snapshot, the aggregator's stderr, our report."""
    pytest.importorskip("transformers", reason="needs the extra bench-metrics[tokenizer]")
    d = Path(tempfile.mkdtemp(prefix="bm-up-tok-"))
    try:
        out, err = run_aggregate(
            d, "--percentile-method", "numpy-lower", "--tokenizer", str(TOKENIZER_DIR)
        )
        final = json.loads((out / "final_snapshot.json").read_text())
        yield final, err, json.loads((out / "result_summary.json").read_text())
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_session_a_with_the_tokenizer_equals_upstreams_final_snapshot(
    session_a_tokenized: tuple[dict[str, Any], str, dict[str, Any]],
) -> None:
    ours, err, _ = session_a_tokenized
    theirs = load_json(SESSION_A_UPSTREAM / "final_snapshot.json")
    diffs = diff_final_snapshots(ours, theirs)
    n_fields = sum(len(m) for m in theirs["metrics"]) + 2
    print(f"session A, with the tokenizer: {len(diffs)} of {n_fields} upstream fields differ")
    assert diffs == [], "\n".join(diffs)
    assert "Traceback" not in err


def test_session_a_token_counts_equal_upstreams_with_its_tokenizer(
    session_a_tokenized: tuple[dict[str, Any], str, dict[str, Any]],
) -> None:
    """Every count, sum and extreme of isl, osl and tpot_ns, the backlog and every counter:
    what the tokenization decides, independently of the percentile and histogram rules."""
    ours, err, report = session_a_tokenized
    theirs = load_json(SESSION_A_UPSTREAM / "final_snapshot.json")
    assert (
        (ours["state"], ours["n_pending_tasks"])
        == ("complete", 0)
        == (
            theirs["state"],
            theirs["n_pending_tasks"],
        )
    )
    mine = {m["name"]: m for m in ours["metrics"]}
    for m in theirs["metrics"]:
        if m["type"] == "counter":
            assert mine[m["name"]]["value"] == m["value"], m["name"]
    for name in TOKEN_SERIES:
        o, t = mine[name], next(m for m in theirs["metrics"] if m["name"] == name)
        for key in ("count", "min", "max"):
            assert o[key] == t[key], (name, key, o[key], t[key])
        for key in ("total", "sum_sq"):
            assert _close(float(o[key]), float(t[key])), (name, key, o[key], t[key])
    # the README's table: 400 prompts (306 token ids, 64 texts, 30 chat prompts), 380
    # non-empty successful outputs, 376 of them with something after the first chunk
    assert [mine[n]["count"] for n in TOKEN_SERIES] == [400, 380, 376]
    c = {m["name"]: m["value"] for m in ours["metrics"] if m["type"] == "counter"}
    assert c["tracked_output_tokens"] == mine["osl"]["total"] == 45_890
    assert c["tokenization_errors"] == 0 and c["events_malformed"] == 0
    assert "Traceback" not in err
    assert ours["run"]["tokenizer"]["name"] == str(TOKENIZER_DIR.resolve())
    # upstream's report: TPS over the legacy LoadGen window, each series' extremes and mean
    # (std_dev and percentiles follow the registry's rules: the full comparison above)
    summary = load_json(SESSION_A_UPSTREAM / "result_summary.json")
    legacy_s = c["legacy_loadgen_window_duration_ns"] / 1e9
    assert report["output_tokens"] / legacy_s == pytest.approx(summary["tps"], rel=REL)
    for ours_name, theirs_name in (
        ("isl", "input_sequence_lengths"),
        ("osl", "output_sequence_lengths"),
        ("tpot_ns", "tpot"),
    ):
        s_, t = report["series"][ours_name], summary[theirs_name]
        assert (s_["min"], s_["max"]) == (t["min"], t["max"]), ours_name
        assert s_["avg"] == pytest.approx(t["avg"], rel=REL), ours_name


def test_report_of_session_a_agrees_with_upstreams_result_summary(workdir: Path) -> None:
    out, _ = run_aggregate(workdir, "--percentile-method", "numpy-lower")
    ours = json.loads((out / "result_summary.json").read_text())
    theirs = load_json(SESSION_A_UPSTREAM_NOTOK / "result_summary.json")
    # Upstream's report takes QPS over the legacy LoadGen window; ours reports both.
    assert ours["qps_legacy"] == pytest.approx(theirs["qps"], rel=REL)
    assert ours["samples"]["tracked"]["issued"] == theirs["n_samples_issued"]
    assert ours["samples"]["tracked"]["completed"] == theirs["n_samples_completed"]
    assert ours["samples"]["tracked"]["failed"] == theirs["n_samples_failed"]
    assert ours["finish_reasons"] == theirs["finish_reason_counts"]
    for ours_name, theirs_name in (("sample_latency_ns", "latency"), ("ttft_ns", "ttft")):
        s, t = ours["series"][ours_name], theirs[theirs_name]
        assert s["std_dev"] == pytest.approx(t["std_dev"], rel=1e-9)
        assert s["avg"] == pytest.approx(t["avg"], rel=REL)
        assert s["early_stopping_percentiles"] == t["early_stopping_percentiles"]


def test_default_method_differs_only_in_percentiles(workdir: Path) -> None:
    """Our default (nearest rank) keeps every count and sum; only the exact picks move."""
    out, _ = run_aggregate(workdir)
    ours = json.loads((out / "final_snapshot.json").read_text())
    theirs = load_json(SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json")
    diffs = diff_final_snapshots(ours, theirs)
    assert diffs and all(".percentiles[" in d for d in diffs), diffs
    assert ours["run"]["percentile_method"] == "nearest-rank"


def test_the_tokenizer_half_of_the_fixture_agrees_where_no_tokenizer_is_needed(
    workdir: Path,
) -> None:
    """Against the run *with* a tokenizer, every series that needs none is equal too."""
    out, _ = run_aggregate(workdir, "--percentile-method", "numpy-lower")
    ours = json.loads((out / "final_snapshot.json").read_text())
    theirs = load_json(SESSION_A_UPSTREAM / "final_snapshot.json")
    token_free = {"sample_latency_ns", "ttft_ns", "chunk_delta_ns"}
    theirs["metrics"] = [
        m for m in theirs["metrics"] if m["type"] == "counter" or m["name"] in token_free
    ]
    ours["metrics"] = [
        m for m in ours["metrics"] if m["type"] == "counter" or m["name"] in token_free
    ]
    assert diff_final_snapshots(ours, theirs) == []


# -- upstream's snapshot stream into export and watch -------------------------


def _publish_snapshot_frames(endpoint: str, stop: Any) -> None:
    """Resend upstream's 8 recorded snapshot messages until ``stop`` is set (a PUB
    socket drops what no subscriber hears yet; the terminal one comes last)."""
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    frames = read_frames(SNAPSHOT_FRAMES)
    try:
        while not stop.is_set():
            for frame in frames:
                sock.send(frame)
            stop.wait(0.05)  # a publishing cadence, not synchronisation
    finally:
        sock.close()


def test_upstream_snapshot_frames_are_one_frame_each() -> None:
    frames = read_frames(SNAPSHOT_FRAMES)
    raw = [msgspec.msgpack.decode(f[40:]) for f in frames]
    assert [f[:40].rstrip(b"\0") for f in frames] == [b"MET"] * 8
    assert [r[2] for r in raw] == ["live"] * 7 + ["complete"]


def test_export_serves_upstreams_final_values(workdir: Path) -> None:
    import threading
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    endpoint = f"ipc://{workdir}/up_met.sock"
    stop = threading.Event()
    pub = threading.Thread(target=_publish_snapshot_frames, args=(endpoint, stop), daemon=True)
    pub.start()
    port_file = workdir / "port"
    proc = subprocess.Popen(
        [
            *bench_metrics(),
            "export",
            "--connect",
            endpoint,
            "--listen",
            "127.0.0.1:0",
            "--linger",
            "30",
            "--run-id",
            "upstream-b",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _served_url(proc, port_file)
        final = load_json(SNAPSHOT_FINAL)
        want = {m["name"]: m for m in final["metrics"]}

        def scrape() -> dict[str, Any]:
            with urllib.request.urlopen(url, timeout=5) as r:
                text = r.read().decode()
            return {f.name: f for f in text_string_to_metric_families(text)}

        deadline = time.monotonic() + WAIT_S
        while True:
            fams = scrape()
            state = fams.get("bench_session_state")
            done = state is not None and any(
                s.value == 1 and s.labels.get("bench_session_state") == "complete"
                for s in state.samples
            )
            if done:
                break
            assert time.monotonic() < deadline, "export never served the complete snapshot"
            time.sleep(0.05)
        issued = {
            s.labels["window"]: s.value
            for s in fams["bench_samples_issued"].samples
            if s.name.endswith("_total")
        }
        assert issued == {
            "all": want["total_samples_issued"]["value"],
            "tracked": want["tracked_samples_issued"]["value"],
        }
        ttft = fams["bench_ttft_quantiles_seconds"]
        q = {
            s.labels["quantile"]: s.value
            for s in ttft.samples
            if s.name == "bench_ttft_quantiles_seconds"
        }
        for key, ns in want["ttft_ns"]["percentiles"].items():
            assert q[f"{float(key) / 100:.10g}"] == pytest.approx(ns / 1e9, rel=1e-12), key
        count = next(s.value for s in ttft.samples if s.name.endswith("_count"))
        assert count == want["ttft_ns"]["count"]
    finally:
        stop.set()
        proc.terminate()
        proc.communicate(timeout=WAIT_S)


def _served_url(proc: subprocess.Popen[str], port_file: Path) -> str:
    """The /metrics URL the exporter logs once it listens."""
    assert proc.stderr is not None
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "http://" in line and "serving" in line.lower():
            start = line.index("http://")
            base = line[start:].split()[0].rstrip("/.,")
            return base if base.endswith("/metrics") else base + "/metrics"
    raise AssertionError("export never said where it serves")


def test_watch_follows_upstreams_stream_to_its_complete_snapshot(workdir: Path) -> None:
    import threading

    endpoint = f"ipc://{workdir}/up_met.sock"
    stop = threading.Event()
    pub = threading.Thread(target=_publish_snapshot_frames, args=(endpoint, stop), daemon=True)
    pub.start()
    try:
        done = subprocess.run(
            [*bench_metrics(), "watch", "--connect", endpoint, "--no-tui", "--timeout", "30"],
            capture_output=True,
            text=True,
            timeout=WAIT_S + 10,
        )
    finally:
        stop.set()
    assert done.returncode == 0, done.stderr
    final = load_json(SNAPSHOT_FINAL)
    completed = next(m["value"] for m in final["metrics"] if m["name"] == "total_samples_completed")
    assert "complete" in done.stdout
    assert f"{completed:,}" in done.stdout


# -- our own messages, read by a decoder written from the SPEC ---------------


def spec_decode_message(frame: bytes) -> tuple[str, list[Any]]:
    """SPEC §4/§5 by hand: 40-byte NUL-padded topic, then msgpack; ``batch`` = array of bin."""
    assert len(frame) >= 40
    topic = frame[:40].rstrip(b"\0").decode("ascii")
    body = msgspec.msgpack.decode(frame[40:])
    if topic == "batch":
        assert isinstance(body, list) and all(isinstance(b, bytes) for b in body)
        return topic, [msgspec.msgpack.decode(b) for b in body]
    return topic, [body]


def test_our_event_publisher_sends_single_frames_a_spec_decoder_reads(workdir: Path) -> None:
    from registry.events import EventPublisher, EventRecord, EventType
    from registry.events.data import PromptData

    endpoint = f"ipc://{workdir}/ours.sock"
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, int(WAIT_S * 1000))
    with EventPublisher(endpoint) as pub:
        sub.connect(endpoint)
        assert asyncio.run(pub.wait_for_subscriber(WAIT_S))
        pub.send(EventRecord(EventType.SESSION_STARTED, 5))
        pub.send_many(
            [
                EventRecord(
                    EventType.SAMPLE_ISSUED, 6, "u1", data=PromptData.build(token_ids=[1, 2, 3])
                ),
                EventRecord(EventType.SAMPLE_COMPLETE, 9, "u1", finish_reason="stop"),
            ]
        )
        messages = [sub.recv_multipart() for _ in range(2)]
    sub.close(linger=0)
    assert [len(m) for m in messages] == [1, 1]
    topic, [started] = spec_decode_message(messages[0][0])
    assert topic == "session.started"
    assert started == {
        "event_type": "session.started",
        "timestamp_ns": 5,
        "sample_uuid": "",
        "conversation_id": "",
        "turn": None,
        "data": None,
    }
    topic, (issued, complete) = spec_decode_message(messages[1][0])
    assert topic == "batch"
    assert issued["data"] == ["PromptData", None, [1, 2, 3], None, None, None, None, None]
    assert complete["finish_reason"] == "stop" and "worker_id" not in complete


def test_our_snapshot_stream_is_single_frames_a_spec_decoder_reads(workdir: Path) -> None:
    from registry import MetricsRegistry, SessionState
    from registry.delivery.publisher import MetricsPublisher

    endpoint = f"ipc://{workdir}/snap.sock"
    reg = MetricsRegistry()
    reg.register_counter("total_samples_issued")
    reg.register_series("ttft_ns", hdr_low=1, hdr_high=10**12, tail_latency=True)
    reg.increment("total_samples_issued", 3)
    for v in (10, 20, 30):
        reg.record("ttft_ns", v)

    async def main() -> list[list[bytes]]:
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        pub = MetricsPublisher(
            reg, endpoint=endpoint, final_snapshot_path=workdir / "f.json", interval_s=0.02
        )
        sub.connect(endpoint)
        got: list[list[bytes]] = []
        try:
            pub.start(lambda: (SessionState.LIVE, 0))
            deadline = time.monotonic() + WAIT_S
            while not got:
                assert time.monotonic() < deadline
                if sub.poll(0):
                    got.append(sub.recv_multipart())
                await asyncio.sleep(0.01)
            await pub.publish_final(n_pending_tasks=0)
            while True:
                if sub.poll(int(WAIT_S * 1000)):
                    m = sub.recv_multipart()
                    got.append(m)
                    if msgspec.msgpack.decode(m[-1][40:])[2] == "complete":
                        return got
        finally:
            await pub.aclose()
            sub.close(linger=0)

    messages = asyncio.run(main())
    assert all(len(m) == 1 for m in messages)
    topic, [final] = spec_decode_message(messages[-1][0])
    assert topic == "MET"
    counter, _ts, state, pending, metrics = final[:5]
    assert (state, pending) == ("complete", 0) and isinstance(counter, int)
    assert metrics[0] == ["counter", "total_samples_issued", 3]
    series = metrics[1]
    assert series[:7] == ["series", "ttft_ns", 3, 60, 10, 30, 1400.0]
    assert series[7]["50.0"] == 20.0
    assert sum(n for _, n in series[8]) == 3
    assert set(series[9]) == {"99.9", "99.0", "97.0", "95.0", "90.0", "80.0", "75.0", "50.0"}


def _fixture_payloads() -> list[bytes]:
    payloads: list[bytes] = []
    for frame in read_frames(SESSION_A_FRAMES):
        body = frame[40:]
        if frame[:40].rstrip(b"\0") == b"batch":
            payloads.extend(msgspec.msgpack.decode(body, type=list[bytes]))
        else:
            payloads.append(body)
    return payloads


def test_every_recorded_upstream_record_decodes_and_re_encodes_byte_for_byte() -> None:
    from registry.events import EventCodec
    from registry.events.data import ErrorData, PromptData, TextModelOutput

    codec = EventCodec()
    payloads = _fixture_payloads()
    assert len(payloads) == 15_976
    kinds: dict[str, int] = {}
    for p in payloads:
        rec = codec.decode(p)
        assert codec.encode(rec)[1] == p
        kinds[rec.event_type.value] = kinds.get(rec.event_type.value, 0) + 1
        plain = msgspec.msgpack.decode(p)
        data = rec.data
        if isinstance(data, PromptData):
            ids = plain["data"][2]
            assert data.n_token_ids == (None if ids is None else len(ids))
            assert data.token_id_list() == ids
            assert data.text == plain["data"][1]
            assert data.message_list() == plain["data"][3]
        elif isinstance(data, TextModelOutput):
            out = plain["data"][1]
            assert data.output_value() == (tuple(out) if isinstance(out, list) else out)
        elif isinstance(data, ErrorData):
            assert [data.error_type, data.error_message] == plain["data"][1:]
    # the fixture README's table of record counts
    assert kinds == {
        "session.started": 1,
        "session.start_performance_tracking": 2,
        "session.stop_performance_tracking": 2,
        "session.stop_loadgen": 1,
        "session.ended": 1,
        "sample.issued": 432,
        "sample.recv_first": 426,
        "sample.recv_non_first": 14_696,
        "error.generic": 11,
        "sample.complete": 404,
    }


def test_upstreams_launcher_command_line_runs_ours_unchanged(workdir: Path) -> None:
    """``python -m exporter.upstream`` with the arguments upstream's launcher passes: the
    readiness id arrives on its PULL socket, the ``.ready`` marker appears, and the output
    equals upstream's own (its defaults: numpy-lower, early stopping when asked)."""
    import sys

    socket_dir = workdir / "socks"
    socket_dir.mkdir()
    out = workdir / "metrics"
    pull = zmq.Context.instance().socket(zmq.PULL)
    pull.bind(f"ipc://{socket_dir}/ready")
    cmd = [
        sys.executable,
        "-m",
        "exporter.upstream",
        "--socket-dir",
        str(socket_dir),
        "--socket-name",
        "ev_pub",
        "--metrics-socket",
        "met_pub",
        "--metrics-output-dir",
        str(out),
        "--publish-interval",
        "0.25",
        "--drain-timeout",
        "0",
        "--streaming",
        "--early-stopping",
        "--readiness-path",
        "ready",
        "--readiness-id",
        "7",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        assert pull.poll(int(WAIT_S * 1000)), "no readiness signal"
        assert msgspec.msgpack.decode(pull.recv()) == 7
        assert (out / ".ready").exists()
        replay_events(f"ipc://{socket_dir}/ev_pub", read_frames(SESSION_A_FRAMES), proc)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        pull.close(linger=0)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    ours = json.loads((out / "final_snapshot.json").read_text())
    theirs = load_json(SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json")
    assert diff_final_snapshots(ours, theirs) == []


@pytest.mark.parametrize("n", [0, 1, 15, 16, 255, 65_535, 65_536, 70_000])
def test_token_ids_are_counted_from_every_msgpack_array_header(n: int) -> None:
    """fixarray (< 16), array 16 and array 32 headers; nil is no ids; anything else raises."""
    from registry.events.data import array_length

    assert array_length(msgspec.Raw(msgspec.msgpack.encode(list(range(n))))) == n
    assert array_length(msgspec.Raw(b"\xc0")) is None
    with pytest.raises(ValueError, match="0xa1"):
        array_length(msgspec.Raw(msgspec.msgpack.encode("x")))
