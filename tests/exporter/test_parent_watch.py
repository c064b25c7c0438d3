"""A child we start ends when its parent dies (issue 15): real processes, real signals.

The chains are real processes (tests/support/parent_watch_child.py): this test → parent →
child → grandchild. The parent is SIGKILLed, as a CI timeout or the OOM killer
would; the child must get SIGTERM (by PDEATHSIG or the watchdog) and the
grandchild, armed on the child, in turn. Last, a real ``bench-metrics demo`` is
SIGKILLed mid-run and its aggregator must end with INTERRUPTED files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.cli.parent_watch import PARENT_PID_ENV, arm_from_environment, child_env
from tests.support.cli_process import bench_metrics
from tests.support.helpers import wait_until

HELPER = str(Path(__file__).parents[1] / "support" / "parent_watch_child.py")

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc and uses Linux prctl"
)


def gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def ppid_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids to SIGKILL at the end whatever happened, so no test leaves an orphan."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def start_parent(d: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, HELPER, "parent", str(d), *extra], stdin=subprocess.PIPE
    )


def kill_parent(parent: subprocess.Popen[bytes]) -> None:
    parent.kill()
    parent.wait(timeout=10)
    assert parent.stdin is not None
    parent.stdin.close()


@linux_only
@pytest.mark.parametrize(
    ("extra", "mechanism"),
    [([], "pdeathsig"), (["--thread"], "watchdog")],
    ids=["main-thread-pdeathsig", "worker-thread-watchdog"],
)
def test_a_killed_parent_takes_its_child_and_grandchild_down(
    tmp_path: Path, leftovers: list[int], extra: list[str], mechanism: str
) -> None:
    parent = start_parent(tmp_path, *extra)
    leftovers.append(parent.pid)
    try:
        assert wait_until(lambda: (tmp_path / "child.json").exists(), 20)
        child = read_json(tmp_path / "child.json")
        leftovers += [child["pid"], child["grandchild"], child["unarmed"]]
        assert wait_until(lambda: (tmp_path / "grandchild.json").exists(), 20)
        assert wait_until(lambda: (tmp_path / "unarmed.json").exists(), 20)
        grandchild = read_json(tmp_path / "grandchild.json")
        unarmed = read_json(tmp_path / "unarmed.json")
        # From a worker thread the parent asked for the watchdog: PDEATHSIG would
        # have fired when that thread ended, and the child would be gone already.
        assert child["mechanism"] == mechanism and child["ppid"] == parent.pid
        assert wait_until(lambda: (tmp_path / "parent.json").exists(), 20)
        assert not gone(child["pid"]) and not (tmp_path / "child.term").exists()
        assert grandchild["mechanism"] == "pdeathsig"  # the child forked on its main thread
        assert grandchild["ppid"] == child["pid"]
        # Read once, then removed: a grandchild never sees its grandparent's pid.
        assert child["left_in_env"] is None
        assert unarmed["inherited"] is None and unarmed["mechanism"] is None
    finally:
        kill_parent(parent)
    assert wait_until(lambda: (tmp_path / "child.term").exists(), 5)
    assert wait_until(lambda: gone(child["pid"]), 5)
    assert wait_until(lambda: (tmp_path / "grandchild.term").exists(), 5)
    assert wait_until(lambda: gone(grandchild["pid"]), 5)
    # Only the processes we armed end: one that merely inherited the environment lives on.
    assert not gone(unarmed["pid"]) and not (tmp_path / "unarmed.term").exists()


@linux_only
@pytest.mark.parametrize("extra", [[], ["--thread"]], ids=["pdeathsig", "watchdog"])
def test_a_parent_that_died_before_the_child_armed_still_ends_it(
    tmp_path: Path, leftovers: list[int], extra: list[str]
) -> None:
    go = tmp_path / "go"
    parent = start_parent(tmp_path, *extra, "--arm-after", str(go))
    leftovers.append(parent.pid)
    try:
        assert wait_until(lambda: (tmp_path / "child.waiting").exists(), 20)
        child = read_json(tmp_path / "child.waiting")["pid"]
        leftovers.append(child)
    finally:
        kill_parent(parent)
    # Reparented before the prctl call: the kernel will never signal it for this parent.
    assert wait_until(lambda: gone(child) or ppid_of(child) != parent.pid, 5)
    go.touch()
    assert wait_until(lambda: (tmp_path / "child.term").exists(), 5)
    assert wait_until(lambda: gone(child), 5)
    assert not (tmp_path / "child.json").exists()  # it ended at arming, before anything else


def test_child_env_names_this_process_and_the_forking_thread() -> None:
    env = child_env({"KEEP": "1"})
    assert env == {"KEEP": "1", PARENT_PID_ENV: str(os.getpid())}
    got: list[dict[str, str]] = []
    worker = threading.Thread(target=lambda: got.append(child_env({})))
    worker.start()
    worker.join()
    assert got == [{PARENT_PID_ENV: f"{os.getpid()}:watchdog"}]
    assert PARENT_PID_ENV not in os.environ  # building a child's env changes nothing here


@pytest.mark.parametrize("value", ["", "abc", "-4", "0", "12:bogus"])
def test_a_bad_value_is_a_warning_and_arms_nothing(
    value: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PARENT_PID_ENV, value)
    with caplog.at_level(logging.WARNING, logger="exporter.cli.parent_watch"):
        assert arm_from_environment() is None
    assert f"ignoring {PARENT_PID_ENV}" in caplog.text
    assert PARENT_PID_ENV not in os.environ


def test_without_the_variable_nothing_is_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARENT_PID_ENV, raising=False)
    assert arm_from_environment() is None


# -- the demo and its aggregator ------------------------------------------------


def reaped(report: Path) -> dict[int, int]:
    """Exit codes the subreaper saw, by pid."""
    codes: dict[int, int] = {}
    for line in report.read_text().splitlines() if report.exists() else []:
        kind, *nums = line.split()
        if kind == "exit":
            codes[int(nums[0])] = int(nums[1])
    return codes


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def start_demo_under_reaper(
    tmp_path: Path, short_tmp: str
) -> tuple[subprocess.Popen[str], Path, Path]:
    """``bench-metrics demo`` under a child subreaper, so the orphaned aggregator's exit
    code is seen; the demo's ipc:// directory goes under ``short_tmp`` (socket paths
    are short) and is removed with it, since a SIGKILLed demo cannot."""
    out, report = tmp_path / "out", tmp_path / "reaped"
    demo = [*bench_metrics(), "--log-level", "WARNING", "demo", "--listen", ""]
    demo += ["--duration", "60", "--qps", "100", "--no-tui", "--output-dir", str(out)]
    proc = subprocess.Popen(
        [sys.executable, HELPER, "reap", str(report), *demo],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": short_tmp},
    )
    return proc, out, report


def demo_pid(report: Path) -> int:
    assert wait_until(report.exists, 20)
    return int(report.read_text().split()[1])


@pytest.fixture
def short_tmp() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="bm-pw-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@linux_only
def test_a_sigkilled_demo_leaves_interrupted_files_and_no_aggregator(
    tmp_path: Path, short_tmp: str, leftovers: list[int]
) -> None:
    proc, out, report = start_demo_under_reaper(tmp_path, short_tmp)
    leftovers.append(proc.pid)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        while first and not first.startswith("["):  # the intro lines come first
            first = proc.stdout.readline()
        assert "live" in first, first  # the first progress line: events are flowing
        demo = demo_pid(report)
        (aggregator,) = children(demo)
        leftovers.append(aggregator)
        os.kill(demo, signal.SIGKILL)
        assert wait_until(lambda: aggregator in reaped(report), 10), report.read_text()
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    codes = reaped(report)
    assert codes[demo] == -signal.SIGKILL
    assert codes[aggregator] == 128 + signal.SIGTERM, err  # as for an ordinary SIGTERM
    assert "SIGTERM received: writing an INTERRUPTED final snapshot" in err
    final = read_json(out / "final_snapshot.json")
    summary = read_json(out / "result_summary.json")
    assert final["state"] == summary["state"] == "interrupted"
    assert summary["complete"] is False
    assert summary["samples"]["all"]["issued"] > 0  # what it had received is kept
    assert not list(out.glob(".*.tmp"))


@linux_only
def test_a_demo_killed_while_its_aggregator_starts_leaves_all_or_nothing(
    tmp_path: Path, short_tmp: str, leftovers: list[int]
) -> None:
    """Killed the moment the aggregator process exists: it may not have armed yet, or
    not installed its handlers; either it writes both INTERRUPTED files or none."""
    proc, out, report = start_demo_under_reaper(tmp_path, short_tmp)
    leftovers.append(proc.pid)
    try:
        demo = demo_pid(report)
        found: list[int] = []
        assert wait_until(lambda: found.extend(children(demo)) or found, 20)
        aggregator = found[0]
        leftovers.append(aggregator)
        os.kill(demo, signal.SIGKILL)
        assert wait_until(lambda: aggregator in reaped(report), 10), report.read_text()
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    code = reaped(report)[aggregator]
    written = sorted(p.name for p in out.glob("*.json")) if out.exists() else []
    # 143 once the command line's SIGTERM handler is in (start-up ends like a run, with
    # the shell's code); -15 if the signal came before Python set it. Files: all or none.
    assert code in (128 + signal.SIGTERM, -signal.SIGTERM), err
    assert written in ([], ["final_snapshot.json", "result_summary.json"]), err
    if written:
        assert code == 128 + signal.SIGTERM
        assert read_json(out / "final_snapshot.json")["state"] == "interrupted"
    assert not out.exists() or not list(out.glob(".*.tmp"))
