"""Helpers for the raw-store, samples and merge tests: event streams split into shares and
replayed through real ``bench-metrics aggregate`` processes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec
import zmq

from registry.events import EventCodec, EventRecord
from registry.transport import BATCH_TOPIC, split_batch, split_message
from tests.support.cli_process import bench_metrics
from tests.support.upstream_fixtures import read_frames

WAIT_S = 60.0
BATCH = 1000
_encode = msgspec.msgpack.Encoder().encode
_batch = msgspec.msgpack.Encoder()


def frames_of(records: Iterable[EventRecord]) -> list[bytes]:
    """SPEC §4 batch messages (topic + msgpack array of payloads) of ``records``."""
    payloads = [_encode(r) for r in records]
    topic = BATCH_TOPIC
    return [topic + _batch.encode(payloads[i : i + BATCH]) for i in range(0, len(payloads), BATCH)]


def records_of_frames(path: Path) -> list[EventRecord]:
    """Every record of a recorded ``*.frames`` file, in order."""
    codec = EventCodec()
    out: list[EventRecord] = []
    for frame in read_frames(path):
        topic, payload = split_message([frame])
        for p in split_batch(payload) if topic == BATCH_TOPIC else [payload]:
            out.append(codec.decode(p))
    return out


def shares(records: Sequence[EventRecord], k: int) -> list[list[EventRecord]]:
    """``k`` disjoint shares of one stream, as ``k`` load generators would each send:
    every sample's events go to one share (by order of first appearance), session
    events to all, errors naming no sample to the first only."""
    out: list[list[EventRecord]] = [[] for _ in range(k)]
    owner: dict[str, int] = {}
    for rec in records:
        uuid = rec.sample_uuid
        if uuid:
            i = owner.setdefault(uuid, len(owner) % k)
            out[i].append(rec)
        elif rec.event_type.is_error:
            out[0].append(rec)
        else:
            for share in out:
                share.append(rec)
    return out


def replay(endpoint: str, frames: Sequence[bytes], proc: subprocess.Popen[str]) -> None:
    """Bind an XPUB at ``endpoint`` and send every frame once the aggregator subscribed."""
    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(endpoint)
    try:
        deadline = time.monotonic() + WAIT_S
        while not sock.poll(100):
            assert proc.poll() is None, f"aggregator exited early ({proc.returncode})"
            assert time.monotonic() < deadline, "the aggregator never subscribed"
        sock.recv()
        for frame in frames:
            sock.send(frame)
    finally:
        sock.close(linger=int(WAIT_S * 1000))


def start_aggregate(workdir: Path, name: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """A ``bench-metrics aggregate`` process writing into ``workdir/name``; its event endpoint."""
    (workdir / "sock").mkdir(exist_ok=True)
    events = f"ipc://{workdir}/sock/{name}.ev"
    cmd = [
        *bench_metrics(),
        "--log-level",
        "WARNING",
        "aggregate",
        "--events",
        events,
        "--snapshots",
        f"ipc://{workdir}/sock/{name}.met",
        "--output-dir",
        str(workdir / name),
        "--interval",
        "0.1",
        *extra,
    ]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True), events


def run_aggregate(workdir: Path, name: str, frames: Sequence[bytes], *extra: str) -> Path:
    """Feed ``frames`` through a real aggregate process; its output directory (exit 0 checked)."""
    proc, events = start_aggregate(workdir, name, *extra)
    try:
        replay(events, frames, proc)
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return workdir / name


def run_aggregates(
    workdir: Path, jobs: Sequence[tuple[str, Sequence[bytes], Sequence[str]]]
) -> list[Path]:
    """:func:`run_aggregate` for several ``(name, frames, extra args)`` at once: the
    processes start together (their start-up overlaps), then each gets its frames."""
    started = [(start_aggregate(workdir, name, *extra), frames) for name, frames, extra in jobs]
    try:
        for (proc, events), frames in started:
            replay(events, frames, proc)
        for (proc, _), _ in started:
            _, err = proc.communicate(timeout=WAIT_S)
            assert proc.returncode == 0, err
    finally:
        for (proc, _), _ in started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return [workdir / name for name, _, _ in jobs]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*bench_metrics(), *args], capture_output=True, text=True, timeout=WAIT_S, check=False
    )
