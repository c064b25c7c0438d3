"""Issue 24 items 7 and 8: ``bench-metrics report`` on bad files (one line, exit 2, bounded
time and memory), and control characters from a file or the stream escaped in every
terminal view (``report``, ``watch --no-tui``, the live view)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import resource
import subprocess
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from exporter.cli.main import main
from exporter.views.live_view import intro_lines, progress_line, render_live
from exporter.views.safe_text import terminal_safe, terminal_safe_tree
from registry.delivery.snapshot import SessionState
from registry.delivery.snapshot_codec import SnapshotCodec, snapshot_to_dict
from registry.report.summary import build_report
from registry.transport import ZmqPublisher
from tests.support.cli_process import bench_metrics
from tests.support.snapshots_factory import snapshot

#: Set the window title, clear the screen, a one-byte CSI, a bidi override, a markup tag.
HOSTILE = "run\x1b]0;pwned\x07-\x1b[2J\x9b31m\u202e[/]x"
ESCAPES = ("\x1b", "\x07", "\x9b", "\u202e")


def one_line_error(capsys: pytest.CaptureFixture[str], path: Path, message: str) -> None:
    assert main(["report", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bench-metrics report: error: ")
    assert message in lines[0], lines[0]


def run_report_process(path: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``bench-metrics report PATH`` as a real process with 2 GiB of address space at most:
    a reader that does not bound its reads dies quickly instead of filling the machine."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    return subprocess.run(
        [*bench_metrics(), "report", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


# -- item 7: bad files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests JSON deeper"),
        (b'{"a": ' * 200 + b"1" + b"}" * 200, "deeper than 64 levels"),
        (b'{"state": "complete", "counter": ' + b"7" * 5001 + b"}", "cannot be read"),
    ],
    ids=["100k-deep", "200-deep", "5001-digits"],
)
def test_hostile_json_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "final_snapshot.json"
    path.write_bytes(content)
    one_line_error(capsys, path, message)


def test_a_bogus_state_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = build_report(snapshot(SessionState.COMPLETE, completed=3))
    summary["state"] = "bogus"
    path = tmp_path / "result_summary.json"
    path.write_text(json.dumps(summary))
    one_line_error(capsys, path, "'state' is 'bogus', not one of complete, draining")
    snap = snapshot_to_dict(snapshot(SessionState.COMPLETE, completed=3))
    snap["state"] = "bogus"
    path.write_text(json.dumps(snap))
    one_line_error(capsys, path, "'bogus' is not a valid SessionState")


def test_a_link_to_dev_zero_is_refused_not_read(tmp_path: Path) -> None:
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    link = tmp_path / "final_snapshot.json"
    link.symlink_to("/dev/zero")
    done = run_report_process(link)
    assert done.returncode == 2, done.stderr[-500:]
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "is a character device, not a regular file" in (
        done.stderr
    )


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "result_summary.json"
    os.mkfifo(fifo)
    done = run_report_process(fifo, timeout=20)  # TimeoutExpired: it blocked in open()
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "is a FIFO, not a regular file" in done.stderr


def test_a_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory is read as a run directory (issue 25): one without final files is
    refused in one line, and a final file that is itself a directory is never read."""
    one_line_error(capsys, tmp_path, "a directory with no final_snapshot.json")
    (tmp_path / "final_snapshot.json").mkdir()
    one_line_error(capsys, tmp_path, "a directory with no final_snapshot.json")


# -- item 8: escape injection -----------------------------------------------------------------


def test_terminal_safe_escapes_controls_and_keeps_the_rest() -> None:
    assert terminal_safe(HOSTILE) == "run\\x1b]0;pwned\\x07-\\x1b[2J\\x9b31m\\u202e[/]x"
    assert terminal_safe("ünï 日本 ✓ plain") == "ünï 日本 ✓ plain"
    assert terminal_safe("a\nb\tc") == "a\\x0ab\\x09c"
    deep: object = "\x1b"
    for _ in range(100):
        deep = [deep]
    assert "\x1b" not in json.dumps(terminal_safe_tree({"\x1bk": deep}))


def test_report_escapes_every_string_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = build_report(
        snapshot(SessionState.INTERRUPTED, completed=3),
        run_id=HOSTILE,
        labels={"model": HOSTILE, HOSTILE: "v"},
    )
    summary["incomplete_reason"] = HOSTILE
    summary["samples"][HOSTILE] = {"issued": 1, "completed": 1, "failed": 0, "in_flight": 0}
    summary["finish_reasons"] = {HOSTILE: 3}
    summary["series"][HOSTILE] = summary["series"]["ttft_ns"]
    path = tmp_path / "result\x1b[2J.json"
    path.write_text(json.dumps(summary))
    assert main(["report", str(path), "--width", "200"]) == 0
    out, _ = capsys.readouterr()
    assert not any(e in out for e in ESCAPES), repr(out)
    assert out.count("run\\x1b]0;pwned\\x07") >= 6  # run id, label, reason, window, series...
    assert "result\\x1b[2J.json" in out


def test_an_error_line_escapes_what_it_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "no\nsuch\x1b]0;x\x07.json"
    one_line_error(capsys, path, "no\\x0asuch\\x1b]0;x\\x07.json")


def hostile_snapshot(state: SessionState) -> object:
    snap = snapshot(state, completed=5)
    counters = [
        msgspec.structs.replace(m, name=m.name + HOSTILE)
        if m.name == "tracked_finish_reason_stop"
        else m
        for m in snap.metrics
    ]
    run = {"run_id": HOSTILE, "labels": {"model": HOSTILE}, "metrics_url": HOSTILE}
    return msgspec.structs.replace(snap, metrics=counters, run=run)


def test_the_live_view_escapes_the_stream() -> None:
    snap = hostile_snapshot(SessionState.LIVE)
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=False)
    console.print(render_live(snap))  # type: ignore[arg-type]
    text = buf.getvalue()
    assert not any(e in text for e in ESCAPES), repr(text)
    assert "run\\x1b]0;pwned\\x07" in text
    for line in [*intro_lines(snap), progress_line(snap)]:  # type: ignore[arg-type]
        assert not any(e in line for e in ESCAPES), repr(line)


def test_watch_no_tui_escapes_the_stream(ipc_endpoint: str) -> None:
    async def main_() -> tuple[int, str, str]:
        with ZmqPublisher(SnapshotCodec(), ipc_endpoint) as pub:
            proc = await asyncio.create_subprocess_exec(
                *bench_metrics(),
                "watch",
                "--connect",
                ipc_endpoint,
                "--no-tui",
                "--refresh",
                "0.05",
                "--timeout",
                "30",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                done = asyncio.ensure_future(proc.communicate())
                final = hostile_snapshot(SessionState.COMPLETE)
                while not done.done():  # a PUB socket drops what no one hears yet
                    pub.send(final)  # type: ignore[arg-type]
                    await asyncio.sleep(0.05)
                out, err = await done
                return proc.returncode or 0, out.decode(), err.decode()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    rc, out, err = asyncio.run(asyncio.wait_for(main_(), 60))
    assert rc == 0, err
    assert not any(e in out for e in ESCAPES), repr(out)
    assert "run run\\x1b]0;pwned\\x07" in out
