"""``bench-metrics watch``: a real process attached to a real snapshot stream."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest

from registry.delivery.snapshot import SessionState
from registry.delivery.snapshot_codec import SnapshotCodec
from registry.transport import ZmqPublisher
from tests.support.cli_process import bench_metrics
from tests.support.snapshots_factory import snapshot

WATCH = [*bench_metrics(), "watch"]


async def read_until(stream: asyncio.StreamReader, needle: str, lines: list[str]) -> None:
    while True:
        raw = await stream.readline()
        if not raw:
            raise AssertionError(f"stream ended before {needle!r}; got {lines}")
        lines.append(raw.decode())
        if needle in lines[-1]:
            return


async def publish_until(
    pub: ZmqPublisher, state: SessionState, done: asyncio.Future, counter: int
) -> None:
    """Send a snapshot every 50 ms until ``done``: a PUB socket drops what no one hears yet."""
    snap = snapshot(state, completed=100 + counter, failed=2, in_flight=3)
    while not done.done():
        pub.send(snap)
        await asyncio.sleep(0.05)  # a publishing cadence, not synchronisation


async def start_watch(endpoint: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *WATCH,
        "--connect",
        endpoint,
        "--no-tui",
        "--refresh",
        "0.05",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def test_watch_follows_the_stream_and_ends_on_the_terminal_snapshot(ipc_endpoint: str) -> None:
    async def main() -> tuple[int, list[str]]:
        lines: list[str] = []
        with ZmqPublisher(SnapshotCodec(), ipc_endpoint) as pub:
            proc = await start_watch(ipc_endpoint)
            assert proc.stdout is not None
            try:
                seen = asyncio.ensure_future(read_until(proc.stdout, "] live", lines))
                await asyncio.wait_for(publish_until(pub, SessionState.LIVE, seen, 0), 20)
                await seen
                exited = asyncio.ensure_future(proc.wait())
                await asyncio.wait_for(publish_until(pub, SessionState.COMPLETE, exited, 1), 20)
                lines += (await proc.stdout.read()).decode().splitlines()
                return await proc.wait(), lines
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    rc, lines = asyncio.run(main())
    assert rc == 0, lines
    progress = [line for line in lines if line.startswith("[")]  # after the intro lines
    assert "issued 105  completed 102  failed 2" in progress[0]
    assert "complete" in lines[-1] and "completed 103" in lines[-1]
    assert "ttft p50" in lines[-1]


def test_ctrl_c_ends_watch_with_130(ipc_endpoint: str) -> None:
    async def main() -> int:
        lines: list[str] = []
        with ZmqPublisher(SnapshotCodec(), ipc_endpoint) as pub:
            proc = await start_watch(ipc_endpoint)
            assert proc.stdout is not None
            try:
                seen = asyncio.ensure_future(read_until(proc.stdout, "] live", lines))
                await asyncio.wait_for(publish_until(pub, SessionState.LIVE, seen, 0), 20)
                proc.send_signal(signal.SIGINT)
                return await asyncio.wait_for(proc.wait(), 20)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    assert asyncio.run(main()) == 130


def test_watch_times_out_without_a_terminal_snapshot(ipc_endpoint: str) -> None:
    done = subprocess.run(
        [*WATCH, "--connect", ipc_endpoint, "--no-tui", "--timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "no terminal snapshot" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--connect", "localhost:5557"], "must start with ipc:// or tcp://"),
        (["--connect", "tcp://127.0.0.1"], "needs a port"),
        (
            ["--connect", "ipc:///tmp/x", "--refresh", "0"],
            "--refresh must be a finite number of seconds > 0",
        ),
    ],
)
def test_bad_arguments_are_one_line_exit_2(argv: list[str], message: str) -> None:
    done = subprocess.run([*WATCH, *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr
