"""``bench-metrics demo`` end to end: real CLI process, real aggregator process, real files."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from exporter.cli.commands import demo
from exporter.cli.main import build_parser, main
from registry.events.synthetic import SourceStats, SyntheticLoad
from tests.support.cli_process import bench_metrics
from tests.support.helpers import wait_until

# Port 0: the exporter must never collide with anything else on this machine.
DEMO = [*bench_metrics(), "--log-level", "WARNING", "demo", "--listen", "127.0.0.1:0"]


def expected_counts(**load: Any) -> SourceStats:
    """What the seeded source sends, computed without any socket."""
    stats = SourceStats()
    for rec in SyntheticLoad(**load).events():
        stats.observe(rec)
    return stats


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def check_nothing_lost(out: Path, expected: SourceStats, stdout: str) -> None:
    report = read_json(out / "result_summary.json")
    final = read_json(out / "final_snapshot.json")
    assert report["state"] == final["state"] == "complete"
    assert report["complete"] is True and report["n_pending_tasks"] == 0
    for window in ("all", "tracked"):
        got = report["samples"][window]
        assert got["issued"] == expected.issued
        assert got["completed"] == expected.completed
        assert got["failed"] == expected.failed
        assert got["issued"] == got["completed"] + got["in_flight"]  # failed ones complete too
        assert got["in_flight"] == 0
    assert report["output_tokens"] == expected.output_tokens
    assert "Counts match (sent/reported)" in stdout
    assert f"issued {expected.issued:,}/{expected.issued:,}" in stdout
    assert f"{expected.events_sent:,} events sent" in stdout


def test_demo_runs_to_completion_with_both_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in demo.FINAL_FILES:
        # An earlier run's files must not pass for this run's: the demo removes them first.
        (out / name).write_text("{}")
    args = ["--duration", "1.5", "--qps", "150", "--seed", "7", "--no-tui"]
    args += ["--output-dir", str(out)]
    done = subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    check_nothing_lost(out, expected_counts(qps=150, duration_s=1.5, seed=7), done.stdout)
    # Plain progress lines, then the report and the files.
    assert "live" in done.stdout and "ttft p50" in done.stdout
    assert "result_summary.json — result summary" in done.stdout
    assert "COMPLETE" in done.stdout
    flat = " ".join(done.stdout.split())  # the console wraps at spaces: join the lines back
    assert f"Files in {out}: final_snapshot.json, result_summary.json" in flat


def test_demo_at_2000_qps_for_10_s_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--duration", "10", "--qps", "2000", "--seed", "11", "--no-tui"]
    args += ["--output-dir", str(out)]
    done = subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = expected_counts(qps=2000, duration_s=10, seed=11)
    assert expected.issued > 19_000
    check_nothing_lost(out, expected, done.stdout)


def test_ctrl_c_interrupts_the_run_and_keeps_an_interrupted_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*DEMO, "--duration", "60", "--qps", "100", "--no-tui", "--output-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = _first_live_line(proc.stdout)  # the run is under way
        assert "live" in first, first
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest + err
    final = read_json(out / "final_snapshot.json")
    report = read_json(out / "result_summary.json")
    assert final["state"] == report["state"] == "interrupted"
    assert report["complete"] is False
    assert "the run was interrupted" in report["incomplete_reason"]
    assert "INTERRUPTED" in rest and "Why:" in rest
    assert "(sent/reported): issued" in rest
    assert "interrupted" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--qps", "0"], "--qps must be a finite number > 0"),
        (["--duration", "-1"], "--duration must be a finite number of seconds > 0"),
        (["--error-rate", "2"], "--error-rate must be a finite number >= 0 and <= 1"),
        (["--interval", "0"], "--interval must be a finite number of seconds > 0"),
    ],
)
def test_bad_options_are_one_line_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *argv, "--output-dir", str(tmp_path / "o")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()  # rejected before anything ran


def test_output_dir_that_is_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--output-dir", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--output-dir: " in err and "is not a directory" in err


def test_aggregator_command_is_built_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    args = argparse.Namespace(
        log_level="DEBUG", streaming=True, interval=0.5, run_id="r1", listen="127.0.0.1:9999"
    )
    monkeypatch.setattr(
        demo, "AGGREGATOR_PASSTHROUGH", [*demo.AGGREGATOR_PASSTHROUGH, ("listen", "--listen")]
    )
    cmd = demo.aggregator_command(
        args, events="ipc:///e", snapshots="ipc:///s", output_dir=Path("/out")
    )
    assert cmd[1:6] == ["-m", "exporter.cli.main", "--log-level", "DEBUG", "aggregate"]
    tail = cmd[6:]
    for flag, value in (
        ("--events", "ipc:///e"),
        ("--snapshots", "ipc:///s"),
        ("--output-dir", "/out"),
        ("--interval", "0.5"),
        ("--run-id", "r1"),
        ("--listen", "127.0.0.1:9999"),
    ):
        assert tail[tail.index(flag) + 1] == value
    assert "--streaming" in tail
    args.streaming = False
    args.run_id = None
    cmd = demo.aggregator_command(args, events="e", snapshots="s", output_dir=Path("/o"))
    assert "--streaming" not in cmd and "--run-id" not in cmd
    args.percentile_method, args.no_early_stopping = "loadgen", True
    cmd = demo.aggregator_command(
        args, events="ipc:///e", snapshots="ipc:///s", output_dir=Path("/o")
    )
    assert cmd[cmd.index("--percentile-method") + 1] == "loadgen"
    assert "--no-early-stopping" in cmd
    # and the aggregator's own parser accepts what the demo passes
    parsed = build_parser().parse_args(cmd[cmd.index("aggregate") :])
    assert parsed.percentile_method == "loadgen" and parsed.early_stopping is False


def test_compare_counts_names_a_difference() -> None:
    stats = SourceStats(issued=10, completed=8, failed=1, events_sent=50)
    same = {"samples": {"all": {"issued": 10, "completed": 8, "failed": 1, "in_flight": 2}}}
    check = demo.compare_counts(stats, same)
    assert check.matches and check.line.startswith("Counts match")
    lost = {"samples": {"all": {"issued": 10, "completed": 7, "failed": 1, "in_flight": 3}}}
    check = demo.compare_counts(stats, lost)
    assert not check.matches
    assert "completed 8/7 ·" in check.line and check.line.startswith("Counts DIFFER")
    assert not demo.compare_counts(stats, {}).matches


def test_no_aggregator_process_is_left_behind(tmp_path: Path) -> None:
    """After an interrupted demo, its aggregator (in its own session) is gone too."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*DEMO, "--duration", "60", "--qps", "50", "--no-tui", "--output-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "live" in _first_live_line(proc.stdout)
        children = _children(proc.pid)
        assert children, "the demo should have an aggregator child"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143  # 128 + SIGTERM, as every command
    assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 10)


def _first_live_line(stdout: Any, max_lines: int = 20) -> str:
    """The first progress line of a live session.

    The first line or two may still say ``initialize``: the demo prints
    progress from its first snapshot on, before ``session.started`` has
    reached the aggregator on a loaded machine.
    """
    line = ""
    for _ in range(max_lines):
        line = stdout.readline()
        if not line or "live" in line:
            break
    return line


def _children(pid: int) -> list[int]:
    """The demo's child processes, as soon as it has started one (Linux /proc)."""
    kids: list[int] = []

    def found() -> bool:
        path = Path(f"/proc/{pid}/task/{pid}/children")
        kids[:] = [int(x) for x in path.read_text().split()] if path.exists() else []
        return bool(kids)

    wait_until(found, 10)
    return kids


def test_aggregator_killed_mid_run_is_reported_not_hidden(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*DEMO, "--duration", "60", "--qps", "100", "--no-tui", "--output-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "live" in _first_live_line(proc.stdout)
        (aggregator,) = _children(proc.pid)
        os.kill(aggregator, signal.SIGKILL)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, rest + err
    assert "the aggregator exited with code -9 mid-run" in err
    # No file was written; the report comes from the last live snapshot and says so.
    assert not (out / "final_snapshot.json").exists()
    assert "Source: latest_live" in rest and "INCOMPLETE" in rest
    assert "missing in" in err
